//! Heap figures of the process, read from whatever counts allocations (the `tweetflow`
//! binary's global allocator).

/// Live and peak heap bytes of the process.
pub trait HeapCounter: Sync {
    /// Bytes currently allocated.
    fn live_bytes(&self) -> usize;
    /// Highest `live_bytes` since the last [`HeapCounter::reset_peak`].
    fn peak_bytes(&self) -> usize;
    /// Starts a new peak measurement from the current live bytes.
    fn reset_peak(&self);
}

/// For a process without a counting allocator: every figure is zero.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHeapCounter;

impl HeapCounter for NoHeapCounter {
    fn live_bytes(&self) -> usize {
        0
    }

    fn peak_bytes(&self) -> usize {
        0
    }

    fn reset_peak(&self) {}
}
