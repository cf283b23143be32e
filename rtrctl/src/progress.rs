//! A progress bar on standard error for long transfers, drawn only when standard error is a terminal (scripts
//! and logs get the final line alone).

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    draw: bool,
}

/// `12.3 MiB`
pub fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// The bar itself: `label [#####-----]  50% 1.0 MiB / 2.0 MiB`.
pub fn bar(label: &str, done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let fraction = if total == 0 { 1.0 } else { (done as f64 / total as f64).min(1.0) };
    let filled = (fraction * WIDTH as f64).round() as u64;
    format!(
        "{label} [{}{}] {:>3.0}% {} / {}",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize),
        fraction * 100.0,
        size(done),
        size(total)
    )
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            draw: std::io::stderr().is_terminal(),
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        let due = self.last_draw.is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
        if self.draw && due {
            self.last_draw = Some(Instant::now());
            eprint!("\r{}", bar(&self.label, self.done, self.total));
            let _ = std::io::stderr().flush();
        }
    }

    /// Ends the bar with a line of its own; returns how long it took.
    pub fn finish(&mut self) -> Duration {
        if self.draw {
            eprintln!("\r{}", bar(&self.label, self.done, self.total));
        }
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_sizes() {
        assert_eq!(bar("up", 512, 1024), format!("up [{}{}]  50% 512 B / 1.0 KiB", "#".repeat(15), "-".repeat(15)));
        assert_eq!(bar("up", 5, 0), format!("up [{}] 100% 5 B / 0 B", "#".repeat(30)));
        assert_eq!(size(3 * 1_048_576), "3.0 MiB");
    }
}
