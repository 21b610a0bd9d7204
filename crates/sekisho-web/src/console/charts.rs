//! The dashboard's pictures, drawn on the server as SVG (no script, no chart library, nothing
//! the page's content policy would have to allow): accesses and denials per hour, and horizontal
//! bars for the top lists. Colours come from the stylesheet (`.chart .allow`, `.chart .deny`).

use maud::{Markup, html};
use serde_json::Value;

use super::Ctx;

const W: f64 = 720.0;
const H: f64 = 160.0;
/// Room for the hour labels under the bars.
const AXIS: f64 = 18.0;

/// Accesses per hour over the last `hours` hours, allowed and denied stacked; each bar says its
/// hour and counts on hover. `hourly` is the summary's `[[hour start ms, allowed, denied], …]`.
pub(super) fn hourly(c: &Ctx, hourly: &Value, now_ms: i64, hours: i64) -> Markup {
    let first = (now_ms / 3_600_000 - (hours - 1)) * 3_600_000;
    let mut counts = vec![(0i64, 0i64); hours as usize];
    for row in hourly.as_array().into_iter().flatten() {
        let (at, allowed, denied) =
            (row[0].as_i64().unwrap_or(0), row[1].as_i64().unwrap_or(0), row[2].as_i64().unwrap_or(0));
        let i = (at - first) / 3_600_000;
        if (0..hours).contains(&i) {
            counts[i as usize] = (allowed, denied);
        }
    }
    let max = counts.iter().map(|(a, d)| a + d).max().unwrap_or(0).max(1) as f64;
    let slot = W / hours as f64;
    let scale = (H - AXIS) / max;
    let (allowed, denied): (i64, i64) = (counts.iter().map(|c| c.0).sum(), counts.iter().map(|c| c.1).sum());
    let total = allowed + denied;
    let label = format!("{} {allowed} / {} {denied}", c.t("dash.allowed"), c.t("dash.denied"));
    html! {
        figure.chart {
            svg #chart-hourly viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(label) {
                @for (i, (allowed, denied)) in counts.iter().enumerate() {
                    @let x = i as f64 * slot + 1.0;
                    @let at = first + i as i64 * 3_600_000;
                    @let hour = c.when(at);
                    @let (ha, hd) = (*allowed as f64 * scale, *denied as f64 * scale);
                    g {
                        title { (hour.get(..16).unwrap_or(&hour)) " — " (c.t("dash.allowed")) " " (allowed) ", " (c.t("dash.denied")) " " (denied) }
                        @if *allowed > 0 { rect.allow x=(x) y=(H - AXIS - ha) width=(slot - 2.0) height=(ha) {} }
                        @if *denied > 0 { rect.deny x=(x) y=(H - AXIS - ha - hd) width=(slot - 2.0) height=(hd) {} }
                    }
                    @if i % 6 == 0 {
                        text.axis x=(x) y=(H - 4.0) { (hour.get(11..16).unwrap_or("")) }
                    }
                }
            }
            figcaption {
                span.key.allow {} " " (c.t("dash.allowed")) " " span.key.deny {} " " (c.t("dash.denied"))
                " · " (c.t("dash.per_hour")) " (" (total) ")"
            }
        }
    }
}

/// The most agents online in each of the last `hours` hours (the summary's `agents_online`,
/// `[[hour start ms, online], …]`); an hour without a sample draws nothing.
pub(super) fn agents(c: &Ctx, samples: &Value, now_ms: i64, hours: i64) -> Markup {
    let first = (now_ms / 3_600_000 - (hours - 1)) * 3_600_000;
    let mut online: Vec<Option<i64>> = vec![None; hours as usize];
    for row in samples.as_array().into_iter().flatten() {
        let i = (row[0].as_i64().unwrap_or(0) - first) / 3_600_000;
        if (0..hours).contains(&i) {
            online[i as usize] = row[1].as_i64();
        }
    }
    let max = online.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let slot = W / hours as f64;
    let scale = (H - AXIS) / max;
    html! {
        figure.chart {
            svg #chart-agents viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(c.t("dash.agents_per_hour")) {
                @for (i, n) in online.iter().enumerate() {
                    @let x = i as f64 * slot + 1.0;
                    @let hour = c.when(first + i as i64 * 3_600_000);
                    @if let Some(n) = n {
                        @let h = (*n as f64 * scale).max(1.0);
                        g {
                            title { (hour.get(..16).unwrap_or(&hour)) " — " (c.t("dash.agents_online")) " " (n) }
                            rect.online x=(x) y=(H - AXIS - h) width=(slot - 2.0) height=(h) {}
                        }
                    }
                    @if i % 6 == 0 {
                        text.axis x=(x) y=(H - 4.0) { (hour.get(11..16).unwrap_or("")) }
                    }
                }
            }
            figcaption { span.key.online {} " " (c.t("dash.agents_per_hour")) " (" (c.t("dash.most")) " " (max as i64) ")" }
        }
    }
}

/// A top list (`[[name, count], …]`) as horizontal bars with their names and counts.
pub(super) fn bars(id: &str, list: &Value, class: &str) -> Markup {
    let rows: Vec<(String, i64)> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r[0].as_str().unwrap_or_default().to_owned(), r[1].as_i64().unwrap_or(0)))
        .collect();
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let row_h = 22.0;
    let height = row_h * rows.len() as f64;
    let (label_w, bar_w) = (200.0, 440.0);
    html! {
        svg.chart #(id) viewBox={ "0 0 " (W) " " (height.max(row_h)) } role="img" {
            @for (i, (name, n)) in rows.iter().enumerate() {
                @let y = i as f64 * row_h;
                g {
                    title { (name) ": " (n) }
                    text.label x="0" y=(y + 15.0) { (truncate(name, 28)) }
                    rect class=(class) x=(label_w) y=(y + 3.0) width=((*n as f64 / max * bar_w).max(1.0)) height=(row_h - 6.0) {}
                    text.count x=(label_w + (*n as f64 / max * bar_w).max(1.0) + 6.0) y=(y + 15.0) { (n) }
                }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}
