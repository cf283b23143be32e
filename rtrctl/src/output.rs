//! Output in one place: a table for people or one JSON document for scripts.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), crate::error::CliError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| crate::error::CliError::Io(format!("JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A plain-text table with left-aligned columns.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(&self.headers);
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row));
        }
        out
    }
}

/// `1d 2h`, `3h 4m`, `5m 6s`, `7s`.
pub fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// RFC 3339 for a protobuf timestamp.
pub fn rfc3339(timestamp: &prost_types::Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(timestamp.seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&["NAME", "STATE"]);
        table.row(vec!["api".into(), "running".into()]);
        table.row(vec!["dhcp4d".into(), "disabled".into()]);
        assert_eq!(table.render(), "NAME    STATE\napi     running\ndhcp4d  disabled");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(7), "7s");
        assert_eq!(human_duration(366), "6m 6s");
        assert_eq!(human_duration(3 * 3600 + 240), "3h 4m");
        assert_eq!(human_duration(86400 + 7200), "1d 2h");
    }
}
