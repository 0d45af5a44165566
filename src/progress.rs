//! Progress on stderr, one style for every long job (rows of a pipeline segment, optimizer
//! steps, training jobs, synthetic rows), and the process's peak memory for the summaries.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over `total` units (a spinner when the total is unknown) labelled `label`;
/// hidden when `show` is false. `unit` names what is counted (`rows`, `steps`, `jobs`).
/// Messages set on it (a loss, a learning rate) follow the ETA.
pub fn bar(show: bool, total: Option<u64>, label: &str, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let template = match total {
        Some(_) => {
            format!("{{prefix:>18}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} {{elapsed}} eta {{eta}} {{msg}}")
        }
        None => format!("{{prefix:>18}} {{spinner}} {{pos}} {unit} {{per_sec}} {{elapsed}} {{msg}}"),
    };
    let style = ProgressStyle::with_template(&template).expect("a valid template").progress_chars("=> ");
    let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr()).with_style(style);
    pb.set_prefix(label.to_string());
    pb
}

/// Peak resident set size of this process so far (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_bar_is_hidden_and_still_counts() {
        let pb = bar(false, Some(10), "x", "rows");
        assert!(pb.is_hidden());
        pb.inc(3);
        assert_eq!(pb.position(), 3);
        assert!(!bar(true, Some(10), "x", "rows").is_hidden() || !std::io::IsTerminal::is_terminal(&std::io::stderr()));
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        let b = peak_rss_bytes().expect("/proc/self/status has VmHWM");
        // this test process holds at least a megabyte
        assert!(b > 1 << 20, "{b}");
    }
}
