//! Classifies the lines of a file and prints one JSON prediction per line.
//!
//! ```sh
//! cargo run -p tweetflow-model --example predict -- MODEL_DIR TEXTS_FILE [BATCH_SIZE]
//! ```

use tweetflow_model::{Classifier, ClassifierOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: predict MODEL_DIR TEXTS_FILE [BATCH_SIZE]");
        std::process::exit(2);
    }
    let batch: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let text = std::fs::read_to_string(&args[2])?;
    let texts: Vec<&str> = text.lines().collect();
    let mut c = Classifier::load(std::path::Path::new(&args[1]), ClassifierOptions::default())?;
    for p in c.predict(&texts, batch)? {
        println!("{}", serde_json::to_string(&p)?);
    }
    Ok(())
}
