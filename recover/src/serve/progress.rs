//! Shows the installer's reports: a bar for the long steps on a terminal, one line per step otherwise.

use std::io::IsTerminal;

use crate::protocol::{Outcome, Report};

pub struct Display {
    terminal: bool,
    step: String,
    bar_open: bool,
}

impl Display {
    pub fn new() -> Display {
        Display { terminal: std::io::stderr().is_terminal(), step: String::new(), bar_open: false }
    }

    pub fn show(&mut self, report: &Report) {
        let new_step = report.step != self.step;
        if new_step && self.bar_open {
            eprintln!();
            self.bar_open = false;
        }
        self.step = report.step.clone();
        if report.outcome == Outcome::Working && report.total > 0 {
            if self.terminal {
                eprint!("\r{}", rtrctl::progress::bar(&report.message, report.done, report.total));
                self.bar_open = true;
            } else if new_step || report.done == report.total {
                eprintln!(
                    "router: {} ({} of {})",
                    report.message,
                    rtrctl::progress::size(report.done),
                    rtrctl::progress::size(report.total)
                );
            }
            return;
        }
        let prefix = match report.outcome {
            Outcome::Working => "router",
            Outcome::Succeeded => "router: done",
            Outcome::Failed => "router: FAILED",
        };
        eprintln!("{prefix}: [{}] {}", report.step, report.message);
    }
}

impl Default for Display {
    fn default() -> Self {
        Display::new()
    }
}
