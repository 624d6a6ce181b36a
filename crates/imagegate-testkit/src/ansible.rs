//! The ansible-core releases that playbook tests run under.
//!
//! tools/setup.sh makes one venv per release listed in
//! tools/ansible-cores.txt (`.work/ansible-<name>`). A playbook test is a
//! function taking a [`Core`]; [`under_each_core!`](crate::under_each_core)
//! turns it into one test per release, so a failure names the release.

use std::path::PathBuf;

use crate::repo_root;

/// One ansible-core release with its own venv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Core {
    /// Ansible 9, one of the two Zuul 14 runs jobs with.
    V2_16,
    /// Ansible 11, the other one.
    V2_18,
    /// The newest release on PyPI when tools/ansible-cores.txt was written.
    Newest,
}

impl Core {
    pub const ALL: [Core; 3] = [Core::V2_16, Core::V2_18, Core::Newest];

    /// The name used in tools/ansible-cores.txt and the venv's directory.
    pub fn name(self) -> &'static str {
        match self {
            Core::V2_16 => "2.16",
            Core::V2_18 => "2.18",
            Core::Newest => "newest",
        }
    }

    /// The venv of this release.
    pub fn venv(self) -> PathBuf {
        repo_root().join(".work").join(format!("ansible-{}", self.name()))
    }

    /// A tool from this release's venv (ansible-playbook, python3, ...).
    /// Panics with the fix when the venv is missing.
    pub fn tool(self, name: &str) -> PathBuf {
        let path = self.venv().join("bin").join(name);
        assert!(
            path.exists(),
            "{} is missing: run tools/setup.sh to make the ansible-core {} venv",
            path.display(),
            self.name()
        );
        path
    }

    /// The ansible-core version the venv holds, as pinned by setup.
    pub fn version(self) -> String {
        std::fs::read_to_string(self.venv().join(".version"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }
}

/// Makes one `#[test]` per ansible-core release for each named function
/// `fn name(core: Core)`, in modules `core_2_16`, `core_2_18` and
/// `core_newest`.
#[macro_export]
macro_rules! under_each_core {
    ($($name:ident),* $(,)?) => {
        mod core_2_16 {
            $( #[test] fn $name() { super::$name($crate::ansible::Core::V2_16) } )*
        }
        mod core_2_18 {
            $( #[test] fn $name() { super::$name($crate::ansible::Core::V2_18) } )*
        }
        mod core_newest {
            $( #[test] fn $name() { super::$name($crate::ansible::Core::Newest) } )*
        }
    };
}
