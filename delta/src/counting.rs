//! Counting object-store requests: every S3 store this process opens (tables, logs, landing
//! folders) goes through [`CountingStore`], which adds one to a process-wide counter per
//! request. The benches report requests per commit from it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result as StoreResult,
};
use deltalake::logstore::{ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use deltalake::{DeltaResult, ObjectStore, Path};
use futures::StreamExt;
use futures::stream::BoxStream;
use url::Url;

static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Object-store requests made by this process's S3 stores so far.
pub fn requests() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

fn count() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// An object store that counts the requests made through it.
#[derive(Debug)]
pub struct CountingStore(pub ObjectStoreRef);

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> StoreResult<PutResult> {
        count();
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> StoreResult<Box<dyn MultipartUpload>> {
        count();
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> StoreResult<GetResult> {
        count();
        self.0.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, StoreResult<Path>>,
    ) -> BoxStream<'static, StoreResult<Path>> {
        count();
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, StoreResult<ObjectMeta>> {
        count();
        self.0.list(prefix).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> StoreResult<ListResult> {
        count();
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> StoreResult<()> {
        count();
        self.0.copy_opts(from, to, options).await
    }
}

/// Wraps the stores of another factory in [`CountingStore`].
pub struct CountingFactory(pub Arc<dyn ObjectStoreFactory>);

impl ObjectStoreFactory for CountingFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let (store, path) = self.0.parse_url_opts(url, config)?;
        Ok((Arc::new(CountingStore(store)), path))
    }
}

/// Routes the `s3://` and `s3a://` stores through [`CountingFactory`].
pub(crate) fn register() {
    let factories = deltalake::logstore::object_store_factories();
    for scheme in ["s3", "s3a"] {
        let Ok(url) = Url::parse(&format!("{scheme}://")) else {
            continue;
        };
        let inner: Option<Arc<dyn ObjectStoreFactory>> =
            factories.get(&url).map(|f| f.value().clone());
        if let Some(inner) = inner {
            factories.insert(url, Arc::new(CountingFactory(inner)));
        }
    }
}
