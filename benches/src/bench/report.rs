//! Turns the runs into figures (median and best of the repetitions) and
//! prints the table.

use serde::Serialize;

use super::TARGET_RATIO;
use super::measure::RunResult;
use crate::capture::CaptureManifest;

/// Figures of one program over all its runs.
#[derive(Debug, Clone, Serialize)]
pub struct ToolFigures {
    /// Packets it reported reading (median run).
    pub packets: u64,
    /// Frame bytes of its input file.
    pub input_frame_bytes: u64,
    /// Median wall time.
    pub median_wall_s: f64,
    /// Shortest wall time.
    pub best_wall_s: f64,
    /// Packets per second of median wall time.
    pub median_pps: f64,
    /// Packets per second of the shortest wall time.
    pub best_pps: f64,
    /// Input bits per second of median wall time, in Gbit/s.
    pub median_gbps: f64,
    /// Median of the program's own packet-rate figure, if it gives one.
    pub self_reported_pps: Option<f64>,
    /// What the median run said besides (flows, drops, protocols).
    pub notes: Vec<String>,
}

impl ToolFigures {
    fn new(runs: &[RunResult], input_frame_bytes: u64) -> Self {
        let mut by_wall: Vec<&RunResult> = runs.iter().collect();
        by_wall.sort_by_key(|run| run.wall);
        let (median, best) = (by_wall[by_wall.len() / 2], by_wall[0]);
        let median_wall_s = median.wall.as_secs_f64();
        let mut reported: Vec<f64> = runs
            .iter()
            .filter_map(|run| run.self_reported_pps)
            .collect();
        reported.sort_by(f64::total_cmp);
        Self {
            packets: median.packets,
            input_frame_bytes,
            median_wall_s,
            best_wall_s: best.wall.as_secs_f64(),
            median_pps: median.wall_pps(),
            best_pps: best.wall_pps(),
            median_gbps: input_frame_bytes as f64 * 8.0 / median_wall_s.max(1e-9) / 1e9,
            self_reported_pps: reported.get(reported.len() / 2).copied(),
            notes: median.notes.clone(),
        }
    }
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Packets in each capture.
    pub capture_packets: u64,
    /// The sensor on vxlan.pcap.
    pub sensor: ToolFigures,
    /// ndpiReader on plain.pcap.
    pub ndpi: ToolFigures,
    /// Sensor pps / ndpiReader pps, both from median wall times: the
    /// primary figure.
    pub ratio_median_wall: f64,
    /// The same from the best runs.
    pub ratio_best_wall: f64,
    /// The same from each program's own rate figure.
    pub ratio_self_reported: Option<f64>,
    /// `ratio_median_wall >= TARGET_RATIO`.
    pub meets_target: bool,
}

impl Summary {
    /// Figures from the runs (each slice non-empty).
    pub fn new(
        manifest: &CaptureManifest,
        sensor_runs: &[RunResult],
        ndpi_runs: &[RunResult],
    ) -> Self {
        let sensor = ToolFigures::new(sensor_runs, manifest.vxlan_frame_bytes);
        let ndpi = ToolFigures::new(ndpi_runs, manifest.plain_frame_bytes);
        let ratio_median_wall = sensor.median_pps / ndpi.median_pps.max(1e-9);
        let ratio_self_reported = match (sensor.self_reported_pps, ndpi.self_reported_pps) {
            (Some(s), Some(n)) if n > 0.0 => Some(s / n),
            _ => None,
        };
        Self {
            capture_packets: manifest.packets,
            ratio_best_wall: sensor.best_pps / ndpi.best_pps.max(1e-9),
            ratio_median_wall,
            ratio_self_reported,
            meets_target: ratio_median_wall >= TARGET_RATIO,
            sensor,
            ndpi,
        }
    }

    /// Prints the table and the ratios.
    pub fn print(&self) {
        println!();
        println!(
            "{:<24} {:>10} {:>10} {:>10} {:>12} {:>12} {:>8} {:>14}",
            "program (input)",
            "packets",
            "median s",
            "best s",
            "pps",
            "best pps",
            "Gbit/s",
            "own pps"
        );
        for (name, figures) in [
            ("sensor (vxlan.pcap)", &self.sensor),
            ("ndpiReader (plain.pcap)", &self.ndpi),
        ] {
            println!(
                "{:<24} {:>10} {:>10.3} {:>10.3} {:>12.0} {:>12.0} {:>8.2} {:>14}",
                name,
                figures.packets,
                figures.median_wall_s,
                figures.best_wall_s,
                figures.median_pps,
                figures.best_pps,
                figures.median_gbps,
                figures
                    .self_reported_pps
                    .map_or("-".to_string(), |pps| format!("{pps:.0}")),
            );
        }
        println!();
        let verdict = if self.meets_target { "meets" } else { "BELOW" };
        println!(
            "ratio sensor/ndpiReader, packets/s on wall-clock time (median runs): {:.2}x  ({verdict} the {TARGET_RATIO:.1}x target)",
            self.ratio_median_wall
        );
        println!(
            "ratio sensor/ndpiReader, best runs:                                 {:.2}x",
            self.ratio_best_wall
        );
        match self.ratio_self_reported {
            Some(ratio) => println!(
                "ratio of their own figures (sensor `pps:` / ndpiReader \"nDPI throughput\"): {ratio:.2}x"
            ),
            None => println!("ratio of their own figures: not available"),
        }
        for (name, figures) in [("sensor", &self.sensor), ("ndpiReader", &self.ndpi)] {
            if figures.packets != self.capture_packets {
                println!(
                    "warning: {name} read {} packets, the capture holds {}",
                    figures.packets, self.capture_packets
                );
            }
            for note in &figures.notes {
                println!("{name}: {note}");
            }
        }
    }
}

/// One paragraph on the capture the programs read.
pub fn print_capture(manifest: &CaptureManifest) {
    let flows = &manifest.schedule.flows;
    println!(
        "capture:  {} packets over {:.1} s ({:.0} Mbit/s inner); vxlan.pcap {:.1} MB, plain.pcap {:.1} MB",
        manifest.packets,
        manifest.duration_s,
        manifest.measured_mbps,
        manifest.vxlan_file_bytes as f64 / 1e6,
        manifest.plain_file_bytes as f64 / 1e6,
    );
    println!(
        "          {:.0} flows open on average ({} under way at the start); started inside: {} HTTP, {} DNS, {} ICMP echo; {} mirror sessions",
        manifest.schedule.mean_open_flows,
        manifest.schedule.open_at_start,
        flows.http,
        flows.dns,
        flows.ping,
        manifest.sessions.len(),
    );
}
