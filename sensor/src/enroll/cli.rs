//! `sensor enroll plan|apply|status`: one pass from the command line.
//!
//! Owns: the subcommand flags and the tables they print. Input: the
//! configuration file and environment, as `sensor run` reads them. Output:
//! text on stdout; the exit code says whether every call succeeded. Does
//! not: loop (the background loop of `sensor run` does).

use super::pass::{Enroller, PassReport};
use super::reconcile::{Plan, Resolved};
use crate::config::{RunArgs, SensorConfig};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// `sensor enroll`.
#[derive(Debug, Clone, clap::Args)]
pub struct EnrollArgs {
    /// TOML configuration file with an `[enroll]` section; SENSOR_ENROLL_*
    /// variables override it.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: EnrollCommand,
}

/// The enroll subcommands.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum EnrollCommand {
    /// Show what one pass would create and delete, changing nothing.
    Plan,
    /// Run one pass: create and delete what the plan says.
    Apply,
    /// Show the sessions the sensor owns and the interfaces AWS refused.
    Status,
}

/// A table with aligned columns.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// The plan as text: target, filter, one row per change, a summary line.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let target = match &plan.target {
        Resolved::Existing(id) => id.clone(),
        Resolved::Create(spec) => format!("create ({spec:?})"),
    };
    let filter = match &plan.filter {
        Resolved::Existing(id) => id.clone(),
        Resolved::Create(()) => "create (accept all)".to_string(),
    };
    let _ = writeln!(out, "target: {target}\nfilter: {filter}");
    let dash = || "-".to_string();
    let mut rows = Vec::new();
    for d in &plan.deletes {
        let (s, e) = (d.session_id.clone(), d.eni_id.clone());
        rows.push(vec![
            "delete".into(),
            s,
            e,
            dash(),
            dash(),
            d.reason.clone(),
        ]);
    }
    for c in &plan.creates {
        rows.push(vec![
            "create".into(),
            dash(),
            c.eni_id.clone(),
            c.instance_id.clone(),
            c.session_number.to_string(),
            c.reason.into(),
        ]);
    }
    for s in &plan.skips {
        let why = format!("{}: {}", s.code, s.detail);
        let (e, i) = (s.eni_id.clone(), s.instance_id.clone());
        rows.push(vec!["skip".into(), dash(), e, i, dash(), why]);
    }
    for t in &plan.delete_targets {
        let why = "owned target no longer used".to_string();
        rows.push(vec![
            "delete".into(),
            t.clone(),
            dash(),
            dash(),
            dash(),
            why,
        ]);
    }
    for f in &plan.delete_filters {
        let why = "owned filter no longer used".to_string();
        rows.push(vec![
            "delete".into(),
            f.clone(),
            dash(),
            dash(),
            dash(),
            why,
        ]);
    }
    let header = ["ACTION", "ID", "ENI", "INSTANCE", "NUMBER", "REASON"];
    table(&mut out, &header, &rows);
    let _ = writeln!(
        out,
        "summary: {} to create, {} to delete, {} skipped, {} kept, {} unused targets/filters to delete",
        plan.creates.len(),
        plan.deletes.len(),
        plan.skips.len(),
        plan.kept,
        plan.delete_targets.len() + plan.delete_filters.len(),
    );
    out
}

/// What a pass did, as text.
pub fn render_report(r: &PassReport) -> String {
    let mut out = format!(
        "applied: {} created, {} deleted, {} targets/filters created, {} deleted, {} refused, {} errors\n",
        r.created,
        r.deleted,
        r.resources_created,
        r.resources_deleted,
        r.refused.len(),
        r.errors.len()
    );
    for (eni, code) in &r.refused {
        let _ = writeln!(out, "refused: {eni}: {code}");
    }
    for e in &r.errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

async fn status(enroller: &Enroller) -> anyhow::Result<String> {
    let observed = enroller.observe().await?;
    let cfg = enroller.config();
    let mut out = String::new();
    let owned: Vec<_> = observed
        .sessions
        .iter()
        .filter(|s| super::reconcile::owned(cfg, &s.tags))
        .collect();
    let _ = writeln!(
        out,
        "owned sessions: {} (tag {}={}; {} sessions in the region)",
        owned.len(),
        cfg.owner_tag_key,
        cfg.owner_tag_value,
        observed.sessions.len()
    );
    let rows: Vec<Vec<String>> = owned
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.eni_id.clone(),
                s.target_id.clone(),
                s.filter_id.clone(),
                s.session_number.to_string(),
                s.vni.map_or("-".into(), |v| v.to_string()),
            ]
        })
        .collect();
    table(
        &mut out,
        &["SESSION", "ENI", "TARGET", "FILTER", "NUMBER", "VNI"],
        &rows,
    );
    let refused = &enroller.state().refused;
    let _ = writeln!(out, "refused interfaces: {}", refused.len());
    let rows: Vec<Vec<String>> = refused
        .iter()
        .map(|(eni, r)| {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(r.at_unix);
            let at = humantime::format_rfc3339_seconds(at).to_string();
            vec![eni.clone(), r.code.clone(), at, r.message.clone()]
        })
        .collect();
    table(&mut out, &["ENI", "CODE", "SINCE", "MESSAGE"], &rows);
    Ok(out)
}

/// Runs `sensor enroll …`; returns the text to print and whether every
/// call succeeded.
pub fn run(args: &EnrollArgs) -> anyhow::Result<(String, bool)> {
    let env = crate::config::load::process_env()?;
    let cfg = SensorConfig::from_sources(args.config.as_deref(), &env, &RunArgs::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut enroller = Enroller::connect(&cfg.enroll).await?;
        match args.command {
            EnrollCommand::Plan => {
                let observed = enroller.observe().await?;
                let plan = enroller.plan(&observed).map_err(anyhow::Error::msg)?;
                Ok((render_plan(&plan), true))
            }
            EnrollCommand::Apply => {
                let (plan, report) = enroller.pass().await.map_err(anyhow::Error::msg)?;
                let mut out = render_plan(&plan);
                if cfg.enroll.dry_run {
                    out.push_str("dry run: nothing changed\n");
                } else {
                    out.push_str(&render_report(&report));
                }
                Ok((out, report.errors.is_empty()))
            }
            EnrollCommand::Status => Ok((status(&enroller).await?, true)),
        }
    })
}
