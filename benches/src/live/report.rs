//! What the live benchmark prints: the set-up before it runs, and the
//! result after (both searches, their ratio or why there is none, and the
//! backlog measure with its interval).

use super::search::{SearchResult, StepResult};
use super::{LiveBenchOptions, LiveSummary, TARGET_RATIO, stats};

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The machine, the pinning, the capture and the receivers' setup.
pub fn header(o: &LiveBenchOptions) {
    println!("machine:   {}", crate::bench::tools::machine_description());
    if let Some(warning) = crate::bench::tools::busy_machine_warning() {
        println!("warning:   {warning}");
    }
    println!(
        "pinning:   receiver on CPUs {} (drain threads: sched_setaffinity; sensor: taskset -c {}), \
         sender on CPUs {} (taskset -c {} sensor replay)",
        o.receiver_cpus, o.receiver_cpus, o.sender_cpus, o.sender_cpus
    );
    println!(
        "capture:   {} ({}, the searches)",
        o.capture.display(),
        if o.gwlb {
            "--encap gwlb: GENEVE around VXLAN, to the sensor's GENEVE port"
        } else {
            "--encap none"
        }
    );
    println!(
        "backlog:   {} x{} (warm-up: {})",
        o.backlog_capture.display(),
        o.backlog_loops,
        o.warmup_capture.display()
    );
    println!(
        "receivers: {} receive thread(s), batch 64, 9216-byte buffers, SO_RCVBUF {} requested; \
         sensor workers {}",
        o.rx_threads, o.rcvbuf_bytes, o.workers
    );
    println!(
        "pass:      loss < {:.2} % over a step of ~{:?}",
        o.max_loss * 100.0,
        o.step
    );
}

/// Both searches, the ratio that decides, and the backlog measure.
pub fn result(o: &LiveBenchOptions, summary: &LiveSummary) {
    let bound = |r: &SearchResult| {
        if r.sender_bound {
            " (sender-bound: no loss at the replay's full speed)"
        } else {
            ""
        }
    };
    let limit = match summary.receiver_quota {
        0 => String::new(),
        p => format!(", each receiver held to {p} % of one CPU"),
    };
    println!(
        "\nresult (highest rate with loss < {:.2} %{limit}):",
        o.max_loss * 100.0
    );
    println!(
        "  bare recvmmsg drain: {:>10.0} pps{}",
        summary.drain.best_pps,
        bound(&summary.drain)
    );
    println!(
        "  sensor run:          {:>10.0} pps{}",
        summary.sensor.best_pps,
        bound(&summary.sensor)
    );
    if summary.search_determined {
        let ratio = summary.sensor.best_pps / summary.drain.best_pps;
        match summary.backlog {
            Some(_) => println!(
                "  ratio: {:.1} % of the ceiling (one search, noisy: the backlog measure below \
                 decides)",
                ratio * 100.0
            ),
            None => println!(
                "  ratio: {:.1} % of the ceiling (target {:.0} %: {})",
                ratio * 100.0,
                TARGET_RATIO * 100.0,
                verdict(summary.meets_target)
            ),
        }
    } else {
        println!(
            "  ratio: undetermined by the search: the drain lost nothing at the replay's full \
             speed ({:.0} pps); give the sender more CPUs (--sender-cpus) or the receivers less \
             (--receiver-quota){}",
            summary.drain.best_pps,
            if summary.backlog.is_some() {
                "; the backlog measure below decides"
            } else {
                ""
            }
        );
        // What each would take with its CPUs fully busy, projected from its
        // CPU use in the full-speed step.
        let projected = |r: &SearchResult| r.steps.get(1).and_then(StepResult::projected_pps);
        if let (Some(d), Some(s)) = (projected(&summary.drain), projected(&summary.sensor)) {
            println!(
                "  projected from receiver CPU use at full speed (secondary figure): drain {d:.0} \
                 pps, sensor {s:.0} pps, ratio {:.1} %",
                s / d * 100.0
            );
        }
    }
    let Some(b) = summary.backlog else {
        return;
    };
    let (d, s) = (b.first, b.second);
    let role = format!(
        "target {:.0} %: {}",
        TARGET_RATIO * 100.0,
        verdict(summary.meets_target)
    );
    println!(
        "  ceiling from the backlog measure (CPU time to empty a queue, unlimited): drain {:.0} \
         pps, sensor {:.0} pps: ratio {:.1} % ({role})",
        d.pps(),
        s.pps(),
        b.ratio() * 100.0,
    );
    if let Some(interval) = b.interval {
        println!(
            "  95 % bootstrap interval of the backlog ratio over the {} pairs: {:.1} % to {:.1} % \
             ({})",
            o.backlog_pairs.max(1),
            interval.0 * 100.0,
            interval.1 * 100.0,
            stats::against(TARGET_RATIO, interval)
        );
    }
    if s.received < s.queued || d.received < d.queued {
        println!(
            "  warning: a receiver got fewer datagrams than were queued (the socket buffer \
             overflowed): the backlog figures are upper bounds"
        );
    }
}
