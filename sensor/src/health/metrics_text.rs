//! `/metrics` text: encodes the registry (whose collector reads the live
//! stats) as OpenMetrics 1.0 when the scraper asks for it, as Prometheus
//! also does, or as Prometheus text 0.0.4 otherwise. It does not decide what
//! the metrics are (see `collector`) and does not serve HTTP.

use prometheus_client::registry::Registry;

/// Content type of Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text 1.0.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// OpenMetrics 1.0 (Prometheus asks for it first in its Accept header).
    OpenMetrics,
    /// Prometheus text 0.0.4 (curl, older scrapers).
    Prometheus,
}

impl TextFormat {
    /// Picks the format from an HTTP `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => TextFormat::OpenMetrics,
            _ => TextFormat::Prometheus,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            TextFormat::OpenMetrics => OPENMETRICS_TEXT,
            TextFormat::Prometheus => PROMETHEUS_TEXT,
        }
    }
}

/// Encodes `registry` in `format`.
pub(crate) fn render(registry: &Registry, format: TextFormat) -> Result<String, std::fmt::Error> {
    let mut open_metrics = String::with_capacity(64 * 1024);
    prometheus_client::encoding::text::encode(&mut open_metrics, registry)?;
    Ok(match format {
        TextFormat::OpenMetrics => open_metrics,
        TextFormat::Prometheus => to_prometheus_text(&open_metrics),
    })
}

/// Turns OpenMetrics text into Prometheus text 0.0.4. `prometheus-client`
/// writes only OpenMetrics, whose counter families are named without the
/// `_total` their samples carry, and which ends with `# EOF`; in 0.0.4 the
/// `# HELP`/`# TYPE` name must be the sample name, so counter descriptors
/// gain `_total` and `# EOF`/`# UNIT` lines go. Samples are left untouched.
pub(crate) fn to_prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut pending_help: Option<&str> = None;
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(h) = pending_help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let rename = kind == "counter" && !name.ends_with("_total");
            if let Some(h) = pending_help.take() {
                match h.strip_prefix("# HELP ").and_then(|r| r.strip_prefix(name)) {
                    Some(help_rest) if rename => {
                        out.push_str("# HELP ");
                        out.push_str(name);
                        out.push_str("_total");
                        out.push_str(help_rest);
                    }
                    _ => out.push_str(h),
                }
                out.push('\n');
            }
            if rename {
                out.push_str("# TYPE ");
                out.push_str(name);
                out.push_str("_total counter\n");
                continue;
            }
        } else if let Some(h) = pending_help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = pending_help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_descriptors_take_total_suffix_in_prometheus_text() {
        let om = "# HELP sensor_packets Packets.\n# TYPE sensor_packets counter\n\
                  sensor_packets_total{thread=\"w\"} 3\n# HELP up Up.\n# TYPE up gauge\n\
                  up 1\n# EOF\n";
        let text = to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP sensor_packets_total Packets.\n# TYPE sensor_packets_total counter\n\
             sensor_packets_total{thread=\"w\"} 3\n# HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }

    #[test]
    fn accept_header_picks_format() {
        let prom = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(TextFormat::negotiate(Some(prom)), TextFormat::OpenMetrics);
        assert_eq!(TextFormat::negotiate(Some("*/*")), TextFormat::Prometheus);
        assert_eq!(TextFormat::negotiate(None), TextFormat::Prometheus);
    }
}
