//! Progress on stderr. On a terminal: a bar for each blob on its way (bytes,
//! rate, time left) above one for all of them, and the engine's lines
//! printed above the bars. Without a terminal (a CI log, a pipe): one plain
//! line every [`PLAIN_EVERY`] at most while blobs move. Either way, a
//! one-line summary of what moved at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use imagegate_registry::progress::{Observer, Transfer};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line may be written.
pub(crate) const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often bars are redrawn from the transfers' positions.
const BARS_EVERY: Duration = Duration::from_millis(100);

/// The display of one command's transfers.
pub(crate) struct Display {
    shared: Arc<Shared>,
    ticker: Option<JoinHandle<()>>,
}

struct Shared {
    bars: Option<Bars>,
    state: Mutex<State>,
    stop: AtomicBool,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
}

#[derive(Default)]
struct State {
    running: BTreeMap<u64, (Arc<Transfer>, Option<ProgressBar>)>,
    /// Blobs moved whole, and their bytes.
    done: u64,
    done_bytes: u64,
    /// When the first transfer started.
    first: Option<Instant>,
}

impl State {
    /// Bytes moved so far and bytes to move, of every blob started.
    fn totals(&self) -> (u64, u64) {
        self.running.values().fold((self.done_bytes, self.done_bytes), |(at, of), (t, _)| {
            (at + t.position(), of + t.total())
        })
    }
}

impl Display {
    /// Bars when `terminal`, else plain lines; installs itself as the
    /// engine's observer and sink of progress lines.
    pub(crate) fn start(terminal: bool) -> Self {
        let bars = terminal.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(style("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"));
            overall.set_message("all blobs");
            Bars { multi, overall }
        });
        let shared = Arc::new(Shared {
            bars,
            state: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        let sink = shared.clone();
        imagegate_registry::log::set_sink(move |line| sink.line(&imagegate_ansible::mask(line)));
        imagegate_registry::progress::set_observer(Observe(shared.clone()));
        let ticking = shared.clone();
        let ticker = std::thread::spawn(move || ticking.tick_until_stopped());
        Self {
            shared,
            ticker: Some(ticker),
        }
    }

    /// Stops drawing and prints the summary of what moved, if anything did.
    pub(crate) fn finish(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(b) = &self.shared.bars {
            b.overall.finish_and_clear();
            b.multi.clear().ok();
        }
        let state = self.shared.state.lock().expect("progress state");
        if let Some(first) = state.first {
            let secs = first.elapsed().as_secs_f64();
            eprintln!(
                "moved {} in {} blob{} in {secs:.1} s ({}/s)",
                HumanBytes(state.done_bytes),
                state.done,
                if state.done == 1 { "" } else { "s" },
                HumanBytes((state.done_bytes as f64 / secs.max(0.001)) as u64)
            );
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid progress template")
        .progress_chars("=> ")
}

impl Shared {
    /// One line of the engine's: above the bars, or plainly.
    fn line(&self, line: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn tick_until_stopped(&self) {
        let every = if self.bars.is_some() { BARS_EVERY } else { PLAIN_EVERY };
        let mut last = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(BARS_EVERY);
            if last.elapsed() >= every {
                last = Instant::now();
                self.tick();
            }
        }
    }

    fn tick(&self) {
        let state = self.state.lock().expect("progress state");
        let (at, of) = state.totals();
        match &self.bars {
            Some(b) => {
                for (t, bar) in state.running.values() {
                    if let Some(bar) = bar {
                        bar.set_position(t.position());
                    }
                }
                b.overall.set_length(of);
                b.overall.set_position(at);
            }
            None if !state.running.is_empty() => {
                let secs = state.first.map_or(0.0, |f| f.elapsed().as_secs_f64()).max(0.001);
                let percent = (at.min(of) * 100).checked_div(of).unwrap_or(100);
                eprintln!(
                    "progress: {} of {} ({percent}%), {}/s; {} blobs done, {} on their way",
                    HumanBytes(at),
                    HumanBytes(of),
                    HumanBytes((at as f64 / secs) as u64),
                    state.done,
                    state.running.len()
                );
            }
            None => {}
        }
    }
}

/// The engine's observer: keeps the running transfers and their bars.
struct Observe(Arc<Shared>);

impl Observer for Observe {
    fn started(&self, transfer: &Arc<Transfer>) {
        let mut state = self.0.state.lock().expect("progress state");
        state.first.get_or_insert_with(Instant::now);
        let bar = self.0.bars.as_ref().map(|b| {
            let bar = b.multi.insert_before(&b.overall, ProgressBar::new(transfer.total()));
            bar.set_style(style("{msg:40!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"));
            bar.set_message(transfer.what().to_string());
            bar.set_position(transfer.position());
            bar
        });
        state.running.insert(transfer.id(), (transfer.clone(), bar));
    }

    fn ended(&self, transfer: &Arc<Transfer>, done: bool) {
        let mut state = self.0.state.lock().expect("progress state");
        if let Some((_, Some(bar))) = state.running.remove(&transfer.id()) {
            bar.finish_and_clear();
            if let Some(b) = &self.0.bars {
                b.multi.remove(&bar);
            }
        }
        if done {
            state.done += 1;
            state.done_bytes += transfer.total();
        }
    }
}
