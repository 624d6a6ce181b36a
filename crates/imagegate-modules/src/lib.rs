//! The imagegate modules. Each binary in `src/bin` is one call into the
//! module's file here. A module file turns its options into a request of
//! the engine (`imagegate-registry`, which owns every workflow: promotion,
//! restore, mirror, build) and the engine's typed report or failure into
//! the Ansible result; nothing more (docs/architecture.md).

pub mod build;
pub mod criteria;
pub mod declared;
pub mod mirror;
pub mod push;
pub mod registries;
pub mod registries_conf;
pub mod retag;

/// The default of a boolean option that is on unless turned off
/// (`#[serde(default = "crate::yes")]`).
pub(crate) fn yes() -> bool {
    true
}

/// Validates each item of a list option, given its index (messages name
/// the item as `images[3]`); the first failure is the answer.
pub(crate) fn validate_each<A, T>(
    items: Vec<A>,
    mut validate: impl FnMut(usize, A) -> Result<T, imagegate_ansible::ModuleError>,
) -> Result<Vec<T>, imagegate_ansible::ModuleError> {
    items.into_iter().enumerate().map(|(i, a)| validate(i, a)).collect()
}

/// The engine's before/after text as Ansible's diff.
pub(crate) fn diff(d: imagegate_registry::report::TextDiff) -> imagegate_ansible::Diff {
    imagegate_ansible::Diff {
        before: d.before,
        after: d.after,
    }
}

/// Sends the engine's progress lines to stderr, where Ansible keeps them in
/// the task's `module_stderr` on failure and a job log can follow them.
/// The engine formats no secret, and every line is masked all the same.
pub fn log_to_stderr(module: &'static str) {
    std::hint::black_box(VERSION_MARK);
    imagegate_registry::log::set_sink(move |line| eprintln!("[{module}] {}", imagegate_ansible::mask(line)));
    // Secrets the engine derives or obtains (base64 of user:password, bearer
    // tokens, API session tokens) are masked in the result too.
    imagegate_registry::secret::set_observer(imagegate_ansible::add_secret);
}

/// The collection version this binary is built as, between a mark and a
/// NUL, where the action plugin and the modules_version check find it in
/// the file (the binary of another architecture cannot be run to ask it).
/// Every module's start names it, so the linker keeps it.
pub static VERSION_MARK: &str = concat!("imagegate.containers modules version ", env!("CARGO_PKG_VERSION"), "\0");
