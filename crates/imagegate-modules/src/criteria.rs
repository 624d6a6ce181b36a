//! `container_retag`'s `criteria` option: raw arguments and their
//! validation. The check and its report are the engine's
//! ([`imagegate_registry::criteria`], [`imagegate_registry::promotion`]).

use std::path::PathBuf;

use imagegate_ansible::ModuleError;
use imagegate_registry::criteria::{ZuulCriteria, DEFAULT_DEADLINE};
use serde::Deserialize;

/// `criteria`: the shape of `promote-set.yaml`'s `promote_set_criteria`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CriteriaArgs {
    /// The tenant's API root, `https://zuul.example.com/api/tenant/<t>`.
    pub api: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub jobs: Vec<String>,
    /// The pipelines whose builds count; none: builds with no change only.
    #[serde(default)]
    pub pipelines: Vec<String>,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    #[serde(default = "crate::yes")]
    pub tls_verify: bool,
}

/// The typed criteria, or a failure naming the option.
pub fn validate(a: CriteriaArgs) -> Result<ZuulCriteria, ModuleError> {
    let api = ZuulCriteria::parse_api(&a.api).map_err(|reason| ModuleError::option("criteria.api", reason))?;
    if a.jobs.is_empty() {
        return Err(ModuleError::option(
            "criteria.jobs",
            "name at least one job that must have succeeded",
        ));
    }
    if let Some(j) = a.jobs.iter().find(|j| j.trim().is_empty()) {
        return Err(ModuleError::option("criteria.jobs", format!("'{j}' is not a job name")));
    }
    if let Some(p) = a.pipelines.iter().find(|p| p.trim().is_empty()) {
        return Err(ModuleError::option("criteria.pipelines", format!("'{p}' is not a pipeline name")));
    }
    for (name, v) in [("criteria.project", &a.project), ("criteria.ref", &a.git_ref)] {
        if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(ModuleError::option(name, "empty; leave it out to not filter by it"));
        }
    }
    if let Some(ca) = &a.ca_cert {
        if !ca.is_file() {
            return Err(ModuleError::option("criteria.ca_cert", format!("{} is not a file", ca.display())));
        }
    }
    Ok(ZuulCriteria {
        api,
        project: a.project,
        git_ref: a.git_ref,
        jobs: a.jobs,
        pipelines: a.pipelines,
        ca_cert: a.ca_cert,
        tls_verify: a.tls_verify,
        deadline: DEFAULT_DEADLINE,
    })
}
