//! Progress lines. The engine writes them through one sink so that the
//! module layer can mask secrets and route them to stderr.

use std::sync::OnceLock;

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Installs the sink for progress lines; the first call wins. Without one,
/// lines go to stderr.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

/// Writes one progress line.
pub fn info(line: &str) {
    match SINK.get() {
        Some(sink) => sink(line),
        None => eprintln!("{line}"),
    }
}
