//! The offline `netpolctl` subcommands. Each returns the text to print, so the binary
//! stays a thin shell and tests can call these directly.
//!
//! Must not decide what is allowed (that is `rules_compiler`) nor touch the kernel.

use anyhow::{bail, Context, Result};
use rules_compiler::analysis::{self, FamilyFilter, Probe};
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{self, DenyAction};
use rules_compiler::render;
use rules_compiler::resolve::Index;

use crate::inputs::{self, Paths};

/// Output format of `compile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompileFormat {
    /// nft text, ready for `nft -f`.
    Nft,
    /// The plan as JSON.
    Json,
}

/// Output format of `matrix` and `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Table,
    /// The stable JSON contract.
    Json,
}

/// What the loaded input produced, plus warnings for stderr.
pub struct Output {
    /// For stdout.
    pub stdout: String,
    /// Warnings for stderr.
    pub warnings: String,
}

fn load(paths: &Paths) -> Result<rules_compiler::Loaded> {
    inputs::load(paths).map_err(|rejected| anyhow::anyhow!("{rejected}"))
}

/// `netpolctl compile`: the ruleset for the given local endpoints.
pub fn compile(
    paths: &Paths,
    locals: &[ObjectName],
    deny: DenyAction,
    format: CompileFormat,
) -> Result<Output> {
    if locals.is_empty() {
        bail!("name at least one local endpoint with --local NAMESPACE/NAME");
    }
    let loaded = load(paths)?;
    let index = Index::new(&loaded.model);
    let ids = inputs::find_endpoints(&index, locals).map_err(anyhow::Error::msg)?;
    let plan = plan::build(&index, &ids, &plan::Options { deny });
    let stdout = match format {
        CompileFormat::Nft => render::nft(&plan),
        CompileFormat::Json => {
            serde_json::to_string_pretty(&plan).context("serialising the plan")? + "\n"
        }
    };
    Ok(Output {
        stdout,
        warnings: inputs::format_warnings(&loaded.warnings),
    })
}

/// `netpolctl matrix`: who may connect to whom, per probe.
pub fn matrix(
    paths: &Paths,
    probes: &[Probe],
    family: FamilyFilter,
    format: ReportFormat,
) -> Result<Output> {
    if probes.is_empty() {
        bail!("name at least one --probe PORT/PROTOCOL, e.g. --probe 8080/TCP");
    }
    let loaded = load(paths)?;
    let index = Index::new(&loaded.model);
    let matrix = analysis::matrix(&index, probes, family);
    let stdout = match format {
        ReportFormat::Table => matrix.render_table(),
        ReportFormat::Json => {
            serde_json::to_string(&matrix).context("serialising the matrix")? + "\n"
        }
    };
    Ok(Output {
        stdout,
        warnings: inputs::format_warnings(&loaded.warnings),
    })
}

/// `netpolctl explain`: the verdict for one flow and the rules behind it.
pub fn explain(
    paths: &Paths,
    from: &ObjectName,
    to: &ObjectName,
    probe: Probe,
    family: FamilyFilter,
    format: ReportFormat,
) -> Result<Output> {
    let loaded = load(paths)?;
    let index = Index::new(&loaded.model);
    let from_id = inputs::find_endpoint(&index, from).map_err(anyhow::Error::msg)?;
    let to_id = inputs::find_endpoint(&index, to).map_err(anyhow::Error::msg)?;
    let explanation = analysis::explain(&index, from_id, to_id, probe, family);
    let stdout = match format {
        ReportFormat::Table => explanation.render_text(),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&explanation).context("serialising the explanation")?
                + "\n"
        }
    };
    Ok(Output {
        stdout,
        warnings: inputs::format_warnings(&loaded.warnings),
    })
}
