//! `imagegate`: the engine from a shell. Each command that changes
//! registries builds the options of the module that does the same work
//! (`registry_mirror`, `container_retag`), runs that module's code in this
//! process, so input is checked and results are shaped exactly as under
//! Ansible, and prints its result: a line that says what happened (with
//! `--dry-run`, what would change), or with `--json` the module's result
//! document. Progress lines go to stderr.
//!
//! Exit codes: 0 done, 1 failed, 2 bad input (nothing done), 3 refused (the
//! promotion criteria not met, or a tag changed underneath), 130 stopped by
//! Ctrl-C.

mod args;
mod direct;
mod output;
mod progress;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};

use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};

use args::Registries;

#[derive(Parser)]
#[command(
    name = "imagegate",
    version,
    about = "Copy, mirror, promote and restore container images between registries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    registries: Registries,
    /// Read and plan only: print what would change, change nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    /// Print the result document (JSON, as the Ansible module returns it)
    /// instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Copy one image (every platform of an index, unless --platform) from
    /// SRC to DEST, with its signatures and referrers.
    Copy {
        /// `registry/repository:tag` or `registry/repository@sha256:...`.
        src: String,
        /// `registry/repository[:tag]`; without a tag, SRC's.
        dest: String,
        /// Keep only this platform of an index (`os/arch[/variant]`); repeat
        /// for more.
        #[arg(long = "platform")]
        platforms: Vec<String>,
    },
    /// Mirror images: registry_mirror's options, read from FILE (YAML or
    /// JSON; `-` for stdin).
    Mirror {
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Promote images by moving tags: container_retag's options, read from
    /// FILE (YAML or JSON; `-` for stdin).
    Promote {
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Put every tag of a promotion record back where it was before.
    Restore {
        /// The record a promotion wrote (`record_file`).
        record: PathBuf,
    },
    /// List a repository's tags.
    Tags {
        /// `registry/repository`.
        repository: String,
        /// Only tags this regular expression matches (searched, as in Python's `re.search`).
        #[arg(long)]
        regex: Option<String>,
    },
    /// What a reference points at: digest, media type, the platforms of
    /// an index or the layers of an image, and whether it is signed.
    Inspect {
        /// `registry/repository:tag` or `registry/repository@sha256:...`.
        reference: String,
    },
    /// Remove a tag, leaving the image's other tags as they are.
    RmTag {
        /// `registry/repository:tag`.
        reference: String,
    },
    /// Print a completion script for a shell (`source <(imagegate completions bash)`).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff: `imagegate man | man -l -`).
    Man,
}

/// What a command ran, to be printed.
pub(crate) struct Done {
    pub result: Value,
    pub bad_input: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Completions { shell } => return print_completions(*shell),
        Command::Man => return print_man(),
        _ => {}
    }
    let writes = !matches!(cli.command, Command::Tags { .. } | Command::Inspect { .. });
    let display = if cli.quiet {
        imagegate_registry::log::set_sink(|_| {});
        None
    } else if writes {
        Some(progress::Display::start(std::io::stderr().is_terminal()))
    } else {
        imagegate_registry::log::set_sink(|line| eprintln!("{}", imagegate_ansible::mask(line)));
        None
    };
    imagegate_registry::secret::set_observer(imagegate_ansible::add_secret);
    if writes {
        if let Err(e) = ctrlc::set_handler(on_ctrl_c) {
            eprintln!("imagegate: cannot catch Ctrl-C ({e}); it will stop this at once");
        }
    }
    let done = match run(&cli) {
        Ok(done) => done,
        Err(problem) => Done {
            result: json!({"failed": true, "changed": false, "msg": problem}),
            bad_input: true,
        },
    };
    if let Some(display) = display {
        display.finish();
    }
    output::print(&done, cli.json, cli.dry_run)
}

/// The first Ctrl-C asks the engine to stop where it is safe to (see
/// imagegate_registry::interrupt): a promotion puts back what it moved, or
/// leaves its record, and the result says which. The second quits at once.
fn on_ctrl_c() {
    static TIMES: AtomicU32 = AtomicU32::new(0);
    if TIMES.fetch_add(1, Ordering::SeqCst) == 0 {
        imagegate_registry::log::info(
            "stopping at the next safe point: no further blob or tag is written, and a promotion puts back the tags it \
             moved (or leaves its record); Ctrl-C again quits at once",
        );
        imagegate_registry::interrupt::request();
    } else {
        eprintln!("imagegate: quitting at once; what was written stays as it is (a promotion's record_file says what moved)");
        std::process::exit(output::INTERRUPTED.into());
    }
}

fn run(cli: &Cli) -> Result<Done, String> {
    let common = cli.registries.options()?;
    match &cli.command {
        Command::Copy { src, dest, platforms } => {
            let image = json!({"src": src, "dest": dest, "platforms": platforms});
            Ok(mirror(with(json!({"images": [image]}), &common), cli.dry_run))
        }
        Command::Mirror { file } => Ok(mirror(with(read_options(file)?, &common), cli.dry_run)),
        Command::Promote { file } => Ok(retag(with(read_options(file)?, &common), cli.dry_run)),
        Command::Restore { record } => Ok(retag(with(json!({"restore_from": absolute(record)?}), &common), cli.dry_run)),
        Command::RmTag { reference } => {
            let (repository, tag) = reference
                .rsplit_once(':')
                .filter(|(repo, _)| !repo.ends_with('/') && !repo.is_empty())
                .ok_or_else(|| format!("{reference}: name the tag to remove (registry/repository:tag)"))?;
            if tag.contains('/') {
                return Err(format!("{reference}: name the tag to remove (registry/repository:tag)"));
            }
            let image = json!({"repository": repository, "remove_tags": [tag]});
            Ok(retag(with(json!({"images": [image]}), &common), cli.dry_run))
        }
        Command::Tags { repository, regex } => direct::tags(&cli.registries, repository, regex.as_deref()),
        Command::Inspect { reference } => direct::inspect(&cli.registries, reference),
        Command::Completions { .. } | Command::Man => unreachable!("printed before"),
    }
}

/// Completion and the manual page come from the command definitions
/// themselves, so they cannot drift from them.
fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "imagegate", &mut std::io::stdout());
    ExitCode::SUCCESS
}

fn print_man() -> ExitCode {
    use clap::CommandFactory;
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imagegate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `options` with the command line's registry settings added (a file's own
/// settings win for a registry both name).
fn with(mut options: Value, common: &Map<String, Value>) -> Value {
    if let Value::Object(o) = &mut options {
        for (k, v) in common {
            match (o.get_mut(k), v) {
                (Some(Value::Object(mine)), Value::Object(theirs)) => {
                    for (host, entry) in theirs {
                        mine.entry(host.clone()).or_insert_with(|| entry.clone());
                    }
                }
                (Some(_), _) => {}
                (None, _) => {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
    }
    options
}

/// A file of module options, YAML or JSON (JSON is YAML); `-`: stdin.
fn read_options(file: &Path) -> Result<Value, String> {
    const MAX: u64 = 16 * 1024 * 1024;
    use std::io::Read;
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().take(MAX + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX + 1).read_to_string(&mut text))
    };
    read.map_err(|e| format!("{}: {e}", file.display()))?;
    if text.len() as u64 > MAX {
        return Err(format!("{}: larger than {} MiB", file.display(), MAX >> 20));
    }
    let value: Value = serde_norway::from_str(&text).map_err(|e| format!("{}: not YAML or JSON: {e}", file.display()))?;
    if !value.is_object() {
        return Err(format!("{}: the module's options are a mapping", file.display()));
    }
    Ok(value)
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs a module's code on `options` in this process.
fn module<P: serde::de::DeserializeOwned>(
    spec: &imagegate_ansible::ModuleSpec,
    body: fn(P, &imagegate_ansible::Context) -> Result<imagegate_ansible::Outcome, imagegate_ansible::ModuleError>,
    mut options: Value,
    dry_run: bool,
) -> Done {
    if let Value::Object(o) = &mut options {
        o.insert("_ansible_check_mode".into(), Value::Bool(dry_run));
        o.insert("_ansible_diff".into(), Value::Bool(true));
    }
    let ran = imagegate_ansible::run_in_process(spec, &options.to_string(), body);
    Done {
        result: ran.result,
        bad_input: ran.bad_input,
    }
}

fn mirror(options: Value, dry_run: bool) -> Done {
    use imagegate_modules::mirror::{run, SPEC};
    module(&SPEC, run, options, dry_run)
}

fn retag(options: Value, dry_run: bool) -> Done {
    use imagegate_modules::retag::{run, SPEC};
    module(&SPEC, run, options, dry_run)
}
