//! Tables the benchmarks print (Markdown, so they paste into notes).

const LABEL: usize = 40;

/// The header of a spread table, under a title.
pub fn spread_header(title: &str) {
    println!("\n{title}");
    println!("| {:<LABEL$} | runs |     min |  median |     p90 |     max |", "case");
    println!("|{}|------|---------|---------|---------|---------|", "-".repeat(LABEL + 2));
}

/// One row of a spread table: how many values, the smallest, median, 90th percentile, largest.
pub fn spread_row(label: &str, mut values: Vec<f64>) {
    assert!(!values.is_empty(), "no values for {label}");
    values.sort_by(f64::total_cmp);
    let pick = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {label:<LABEL$} | {:>4} | {:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} |",
        values.len(),
        pick(0.0),
        pick(0.5),
        pick(0.9),
        pick(1.0)
    );
}
