//! A small, dependency-free SVG line-chart writer for training curves.
//!
//! A [`Chart`] holds a title, axis labels, any number of [`Series`] and optional vertical
//! markers (for example the selected epoch). [`Chart::to_svg`] renders one chart as a standalone
//! SVG document; [`stack_svg`] stacks several charts vertically in one document (for example a
//! P@5 panel above an NDCG@5 panel).
//!
//! Robustness rules:
//! - non-finite points (NaN, ±inf) are skipped and break the line into separate segments;
//! - an empty series still appears in the legend; a chart without any finite point says "no data";
//! - a zero-width range (a single point, constant values) is padded so the axis stays readable;
//! - all text is XML-escaped, and no number written to the document is ever NaN or infinite.

use std::fmt::Write as _;

/// One line on the chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)` points, drawn in the given order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// Builds a series from a name and its points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// A chart: title, axis labels, series and vertical markers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chart {
    /// Title drawn above the plot area.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The lines to draw, coloured from a fixed palette in order.
    pub series: Vec<Series>,
    /// Vertical dashed lines at the given x with a short label (e.g. the selected epoch).
    pub markers: Vec<(f64, String)>,
}

/// Width of one chart in SVG user units (pixels).
pub const CHART_WIDTH: f64 = 720.0;
/// Height of one chart in SVG user units (pixels); stacked charts add up.
pub const CHART_HEIGHT: f64 = 360.0;

const MARGIN_LEFT: f64 = 72.0;
const MARGIN_RIGHT: f64 = 170.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 52.0;
const TARGET_TICKS: usize = 5;
const MAX_TICKS: i64 = 1000;

/// Tableau-10 colours: distinct and readable on white.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
/// Dash patterns used once the palette has been cycled through, so series stay distinguishable.
const DASHES: [&str; 3] = ["", "6,3", "2,2"];

impl Chart {
    /// Builds a chart with a title and axis labels, without series or markers.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            markers: Vec::new(),
        }
    }

    /// Renders this chart as a standalone SVG document of [`CHART_WIDTH`] × [`CHART_HEIGHT`].
    pub fn to_svg(&self) -> String {
        stack_svg(std::slice::from_ref(self))
    }

    /// Writes the chart's elements (no `<svg>` wrapper) into `out`, at the origin.
    fn write_body(&self, out: &mut String) -> std::fmt::Result {
        let plot = Rect {
            x0: MARGIN_LEFT,
            y0: MARGIN_TOP,
            x1: CHART_WIDTH - MARGIN_RIGHT,
            y1: CHART_HEIGHT - MARGIN_BOTTOM,
        };

        let finite_points = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().copied())
                .filter(|&(x, y)| x.is_finite() && y.is_finite())
        };
        let has_data = finite_points().next().is_some();
        let marker_xs = self.markers.iter().map(|m| m.0).filter(|x| x.is_finite());
        let x_range = min_max(finite_points().map(|p| p.0).chain(marker_xs));
        let y_range = min_max(finite_points().map(|p| p.1));
        let (x_ticks, x_dom) = axis(x_range);
        let (y_ticks, y_dom) = axis(y_range);
        let sx = |x: f64| scale(x, x_dom, (plot.x0, plot.x1));
        let sy = |y: f64| scale(y, y_dom, (plot.y1, plot.y0));

        // Background and title.
        writeln!(
            out,
            r##"<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##,
            num(CHART_WIDTH),
            num(CHART_HEIGHT)
        )?;
        writeln!(out, "<title>{}</title>", escape(&self.title))?;
        writeln!(
            out,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            num((plot.x0 + plot.x1) / 2.0),
            escape(&self.title)
        )?;

        // Gridlines and tick labels.
        writeln!(out, r##"<g stroke="#e0e0e0" stroke-width="1">"##)?;
        for &t in &x_ticks {
            let x = sx(t);
            writeln!(
                out,
                r#"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}"/>"#,
                num(x),
                num(plot.y0),
                num(plot.y1)
            )?;
        }
        for &t in &y_ticks {
            let y = sy(t);
            writeln!(
                out,
                r#"<line x1="{1}" y1="{0}" x2="{2}" y2="{0}"/>"#,
                num(y),
                num(plot.x0),
                num(plot.x1)
            )?;
        }
        writeln!(out, "</g>")?;
        writeln!(out, r##"<g font-size="11" fill="#333333">"##)?;
        let x_step = step_of(&x_ticks);
        for &t in &x_ticks {
            writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                num(sx(t)),
                num(plot.y1 + 16.0),
                escape(&tick_label(t, x_step))
            )?;
        }
        let y_step = step_of(&y_ticks);
        for &t in &y_ticks {
            writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                num(plot.x0 - 6.0),
                num(sy(t) + 4.0),
                escape(&tick_label(t, y_step))
            )?;
        }
        writeln!(out, "</g>")?;

        // Axes frame and axis labels.
        writeln!(
            out,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#333333" stroke-width="1"/>"##,
            num(plot.x0),
            num(plot.y0),
            num(plot.x1 - plot.x0),
            num(plot.y1 - plot.y0)
        )?;
        writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
            num((plot.x0 + plot.x1) / 2.0),
            num(CHART_HEIGHT - 12.0),
            escape(&self.x_label)
        )?;
        writeln!(
            out,
            r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle" font-size="13">{}</text>"#,
            num((plot.y0 + plot.y1) / 2.0),
            escape(&self.y_label)
        )?;

        // Vertical markers: dashed lines under the series, labels drawn after them (below).
        let markers: Vec<(f64, &str)> = self
            .markers
            .iter()
            .filter(|m| m.0.is_finite())
            .map(|(x, label)| (sx(*x), label.as_str()))
            .collect();
        for &(px, _) in &markers {
            writeln!(
                out,
                r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#555555" stroke-width="1.2" stroke-dasharray="5,4"/>"##,
                num(px),
                num(plot.y0),
                num(plot.y1)
            )?;
        }

        // Series: polylines broken at non-finite points, with circle markers.
        for (i, s) in self.series.iter().enumerate() {
            let (colour, dash) = style(i);
            writeln!(
                out,
                r#"<g stroke="{colour}" fill="{colour}"><title>{}</title>"#,
                escape(&s.name)
            )?;
            for segment in segments(&s.points) {
                if segment.len() >= 2 {
                    let pts = segment
                        .iter()
                        .map(|&(x, y)| format!("{},{}", num(sx(x)), num(sy(y))))
                        .collect::<Vec<_>>()
                        .join(" ");
                    writeln!(
                        out,
                        r#"<polyline points="{pts}" fill="none" stroke-width="1.8" stroke-linejoin="round"{}/>"#,
                        dash_attr(dash)
                    )?;
                }
                for &(x, y) in segment {
                    writeln!(
                        out,
                        r#"<circle cx="{}" cy="{}" r="2.5" stroke="none"/>"#,
                        num(sx(x)),
                        num(sy(y))
                    )?;
                }
            }
            writeln!(out, "</g>")?;
        }

        // Marker labels on a white halo, on the side of the line with more room.
        for &(px, label) in &markers {
            let (tx, anchor) = if px > (plot.x0 + plot.x1) / 2.0 {
                (px - 4.0, "end")
            } else {
                (px + 4.0, "start")
            };
            writeln!(
                out,
                r##"<text x="{}" y="{}" text-anchor="{anchor}" font-size="10" fill="#444444" stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">{}</text>"##,
                num(tx),
                num(plot.y0 + 12.0),
                escape(label)
            )?;
        }

        if !has_data {
            writeln!(
                out,
                r##"<text x="{}" y="{}" text-anchor="middle" font-size="14" fill="#888888">no data</text>"##,
                num((plot.x0 + plot.x1) / 2.0),
                num((plot.y0 + plot.y1) / 2.0)
            )?;
        }

        // Legend, to the right of the plot area.
        writeln!(out, r#"<g font-size="12">"#)?;
        let lx = plot.x1 + 14.0;
        for (i, s) in self.series.iter().enumerate() {
            let (colour, dash) = style(i);
            let ly = plot.y0 + 8.0 + 18.0 * i as f64;
            writeln!(
                out,
                r#"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="{colour}" stroke-width="2"{dash}/><circle cx="{xc}" cy="{y}" r="2.5" fill="{colour}"/><text x="{xt}" y="{yt}"{fit}>{name}</text>"#,
                x0 = num(lx),
                x1 = num(lx + 22.0),
                y = num(ly),
                dash = dash_attr(dash),
                xc = num(lx + 11.0),
                xt = num(lx + 28.0),
                yt = num(ly + 4.0),
                fit = fit_attr(&s.name, CHART_WIDTH - (lx + 28.0) - 6.0),
                name = escape(&s.name)
            )?;
        }
        writeln!(out, "</g>")?;
        Ok(())
    }
}

/// Renders several charts stacked vertically in one SVG document.
///
/// The document is [`CHART_WIDTH`] wide and `charts.len()` × [`CHART_HEIGHT`] high; each chart
/// keeps its own axes, ranges and legend.
pub fn stack_svg(charts: &[Chart]) -> String {
    let height = CHART_HEIGHT * charts.len() as f64;
    let mut out = String::new();
    // Writing to a `String` cannot fail; the `fmt::Result` only exists to allow `?` above.
    let _ = write_document(&mut out, charts, height);
    out
}

fn write_document(out: &mut String, charts: &[Chart], height: f64) -> std::fmt::Result {
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" font-family="sans-serif">"#,
        num(CHART_WIDTH),
        num(height)
    )?;
    for (i, chart) in charts.iter().enumerate() {
        writeln!(
            out,
            r#"<g transform="translate(0,{})">"#,
            num(CHART_HEIGHT * i as f64)
        )?;
        chart.write_body(out)?;
        writeln!(out, "</g>")?;
    }
    write!(out, "</svg>")
}

/// "Nice" tick values covering `[lo, hi]`, roughly `target` intervals apart.
///
/// The step is 1, 2 or 5 × 10ⁿ; the first tick is ≤ `lo` and the last ≥ `hi`, so the ticks also
/// give a tidy axis domain (0..1 → 0, 0.2, …, 1; 0.31..0.42 → 0.30, 0.32, …, 0.42). The bounds may
/// come in either order. A zero-width range is padded (by 10 % of the value, or ±1 around zero).
/// Returns an empty vector when a bound is not finite, and just the padded bounds when the range
/// cannot be subdivided sensibly (e.g. it overflows `f64`).
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return Vec::new();
    }
    let (lo, hi) = pad((lo.min(hi), lo.max(hi)));
    let span = hi - lo;
    let rough = span / target.max(1) as f64;
    if !span.is_finite() || rough <= 0.0 || !rough.is_normal() {
        return vec![lo, hi];
    }
    let mut exp = rough.log10().floor() as i32;
    let norm = rough / 10f64.powi(exp);
    let mantissa: i64 = if norm < 1.5 {
        1
    } else if norm < 3.0 {
        2
    } else if norm < 7.0 {
        5
    } else {
        exp += 1;
        1
    };
    // Tick k is k·mantissa·10^exp; dividing by an exact power of ten (rather than multiplying by
    // an inexact 0.1) makes ticks such as 0.3 come out as the nearest double to 0.3.
    let pow = 10f64.powi(exp.abs());
    let value = |k: i64| {
        let units = (k * mantissa) as f64;
        if exp >= 0 { units * pow } else { units / pow }
    };
    let step = if exp >= 0 {
        mantissa as f64 * pow
    } else {
        mantissa as f64 / pow
    };
    if !step.is_normal() || !pow.is_normal() {
        return vec![lo, hi];
    }
    const EPS: f64 = 1e-9;
    let k_lo = (lo / step + EPS).floor();
    let k_hi = (hi / step - EPS).ceil();
    if !k_lo.is_finite() || !k_hi.is_finite() || k_hi - k_lo > MAX_TICKS as f64 {
        return vec![lo, hi];
    }
    let (k_lo, k_hi) = (k_lo as i64, k_hi as i64);
    let ticks: Vec<f64> = (k_lo..=k_hi).map(value).collect();
    if ticks.len() < 2 || ticks.iter().any(|t| !t.is_finite()) {
        return vec![lo, hi];
    }
    ticks
}

/// An axis-aligned rectangle in SVG coordinates.
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

/// Minimum and maximum of finite values, if any.
fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Widens a zero-width range so it can be drawn.
fn pad((lo, hi): (f64, f64)) -> (f64, f64) {
    if hi > lo {
        return (lo, hi);
    }
    let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - d, hi + d)
}

/// Ticks and domain for an axis over a data range (0..1 when there is no data).
fn axis(range: Option<(f64, f64)>) -> (Vec<f64>, (f64, f64)) {
    let (lo, hi) = range.unwrap_or((0.0, 1.0));
    let ticks = nice_ticks(lo, hi, TARGET_TICKS);
    let dom = match (ticks.first(), ticks.last()) {
        (Some(&a), Some(&b)) if b > a => (a, b),
        _ => pad((lo, hi)),
    };
    (ticks, dom)
}

/// Maps `v` from the domain to the range linearly; halves avoid overflow for huge domains.
fn scale(v: f64, (d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> f64 {
    let den = d1 / 2.0 - d0 / 2.0;
    let t = if den > 0.0 {
        (v / 2.0 - d0 / 2.0) / den
    } else {
        0.5
    };
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.5
    };
    r0 + t * (r1 - r0)
}

/// Splits points into runs of finite points, breaking at any non-finite one.
fn segments(points: &[(f64, f64)]) -> impl Iterator<Item = &[(f64, f64)]> {
    points
        .split(|&(x, y)| !x.is_finite() || !y.is_finite())
        .filter(|s| !s.is_empty())
}

/// Colour and dash pattern for the `i`-th series.
fn style(i: usize) -> (&'static str, &'static str) {
    (
        PALETTE[i % PALETTE.len()],
        DASHES[(i / PALETTE.len()) % DASHES.len()],
    )
}

/// Squeezes legend text that would run past `width` pixels at font size 12, keeping the full text.
fn fit_attr(text: &str, width: f64) -> String {
    // Rough average glyph width of a 12 px sans-serif font.
    let estimate = 6.6 * text.chars().count() as f64;
    if estimate > width {
        // `textLength` is exact in browsers; the smaller font helps renderers that ignore it.
        let size = (12.0 * width / estimate).max(7.0);
        format!(
            r#" font-size="{}" textLength="{}" lengthAdjust="spacingAndGlyphs""#,
            num(size),
            num(width)
        )
    } else {
        String::new()
    }
}

fn dash_attr(dash: &str) -> String {
    if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    }
}

/// Formats an SVG coordinate; never emits NaN or infinity.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Spacing between consecutive ticks (0 when there are fewer than two).
fn step_of(ticks: &[f64]) -> f64 {
    match ticks {
        [a, b, ..] => (b - a).abs(),
        _ => 0.0,
    }
}

/// Formats a tick value with just enough decimals for the tick step.
fn tick_label(v: f64, step: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let big = v.abs() >= 1e6;
    let tiny = step > 0.0 && step < 1e-4;
    let s = if big || tiny {
        // Scientific notation with enough significant digits to tell neighbours apart.
        let digits = if step > 0.0 && v != 0.0 {
            ((v.abs().log10().floor() - step.log10().floor()).max(0.0) as usize).min(12)
        } else {
            0
        };
        format!("{v:.digits$e}")
    } else {
        let decimals = if step > 0.0 {
            (-step.log10().floor()).clamp(0.0, 10.0) as usize
        } else {
            3
        };
        format!("{v:.decimals$}")
    };
    // Avoid "-0", "-0.00" and friends.
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_owned()
    } else {
        s
    }
}

/// Escapes text for XML content and attribute values; drops characters XML 1.0 forbids.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal well-formedness check: tags nest and close, entities are known,
    /// and attribute values are quoted. Returns the list of element names opened.
    fn check_xml(doc: &str) -> Vec<String> {
        assert!(doc.starts_with("<svg"), "must start with <svg");
        assert!(doc.ends_with("</svg>"), "must end with </svg>");
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = doc;
        while let Some(pos) = rest.find(['<', '&']) {
            check_text(&rest[..pos]);
            rest = &rest[pos..];
            if rest.starts_with('&') {
                check_entity(rest);
                rest = &rest[1..];
                continue;
            }
            let end = rest.find('>').expect("unterminated tag");
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().expect("close without open");
                assert_eq!(open, name.trim(), "mismatched close tag");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad tag name in <{tag}>"
            );
            check_attrs(&body[name.len()..]);
            seen.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
        seen
    }

    fn check_text(text: &str) {
        assert!(!text.contains('>'), "raw '>' in text: {text:?}");
    }

    fn check_entity(at: &str) {
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| at.starts_with(e)),
            "bad entity at {:?}",
            &at[..at.len().min(12)]
        );
    }

    fn check_attrs(mut attrs: &str) {
        loop {
            attrs = attrs.trim_start();
            if attrs.is_empty() {
                return;
            }
            let eq = attrs.find('=').expect("attribute without '='");
            let key = &attrs[..eq];
            assert!(
                key.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                "bad attribute name {key:?}"
            );
            let after = &attrs[eq + 1..];
            assert!(after.starts_with('"'), "unquoted attribute {key}");
            let close = after[1..].find('"').expect("unterminated attribute");
            let value = &after[1..1 + close];
            assert!(!value.contains('<'), "raw '<' in attribute");
            let mut v = value;
            while let Some(p) = v.find('&') {
                check_entity(&v[p..]);
                v = &v[p + 1..];
            }
            attrs = &after[close + 2..];
        }
    }

    fn count(doc: &str, needle: &str) -> usize {
        doc.matches(needle).count()
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{actual:?} vs {expected:?}");
        }
    }

    fn sample_chart() -> Chart {
        let mut chart = Chart::new("IRGAN training", "epoch", "P@5");
        chart.series.push(Series::new(
            "generator",
            (1..=20)
                .map(|e| (e as f64, 0.3 + 0.005 * e as f64))
                .collect(),
        ));
        chart.series.push(Series::new(
            "discriminator",
            (1..=20)
                .map(|e| (e as f64, 0.28 + 0.004 * e as f64))
                .collect(),
        ));
        chart.markers.push((12.0, "selected (epoch 12)".into()));
        chart
    }

    #[test]
    fn nice_ticks_unit_range() {
        assert_close(&nice_ticks(0.0, 1.0, 5), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    }

    #[test]
    fn nice_ticks_narrow_metric_range() {
        assert_close(
            &nice_ticks(0.31, 0.42, 5),
            &[0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.42],
        );
    }

    #[test]
    fn nice_ticks_other_ranges() {
        assert_close(&nice_ticks(1.0, 20.0, 5), &[0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_close(
            &nice_ticks(0.0, 100.0, 5),
            &[0.0, 20.0, 40.0, 60.0, 80.0, 100.0],
        );
        assert_close(
            &nice_ticks(-0.5, 0.5, 5),
            &[-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6],
        );
        assert_close(
            &nice_ticks(0.0, 7.0, 5),
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        );
        // Reversed bounds are accepted.
        assert_close(&nice_ticks(1.0, 0.0, 5), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        // Ticks are the nearest doubles to the decimal values, not accumulated sums.
        assert!(nice_ticks(0.0, 1.0, 5).contains(&0.6));
    }

    #[test]
    fn nice_ticks_degenerate_ranges() {
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
        assert!(nice_ticks(0.0, f64::INFINITY, 5).is_empty());
        // Zero-width ranges are padded.
        let around_zero = nice_ticks(0.0, 0.0, 5);
        assert!(around_zero.first().unwrap() <= &-1.0 && around_zero.last().unwrap() >= &1.0);
        let constant = nice_ticks(0.5, 0.5, 5);
        assert!(constant.len() >= 3);
        assert!(constant[0] < 0.5 && *constant.last().unwrap() > 0.5);
        // Huge spans fall back to the bounds rather than overflowing.
        let huge = nice_ticks(-f64::MAX, f64::MAX, 5);
        assert!(huge.iter().all(|t| t.is_finite()));
        assert!(huge.len() >= 2);
    }

    #[test]
    fn chart_is_well_formed_with_legend_and_markers() {
        let svg = sample_chart().to_svg();
        let tags = check_xml(&svg);
        assert_eq!(count(&svg, "<svg"), 1);
        assert_eq!(count(&svg, "<g"), count(&svg, "</g>"));
        assert_eq!(count(&svg, "<text"), count(&svg, "</text>"));
        assert!(svg.contains(r#"width="720""#) && svg.contains(r#"height="360""#));
        assert!(svg.contains(">generator</text>"));
        assert!(svg.contains(">discriminator</text>"));
        assert!(svg.contains(">IRGAN training</text>"));
        assert!(svg.contains(">epoch</text>") && svg.contains(">P@5</text>"));
        assert!(svg.contains("stroke-dasharray=\"5,4\""), "marker line");
        assert!(svg.contains(">selected (epoch 12)</text>"));
        assert_eq!(tags.iter().filter(|t| *t == "polyline").count(), 2);
        // 20 points per series plus one legend circle each.
        assert_eq!(tags.iter().filter(|t| *t == "circle").count(), 42);
        // Distinct colours for the two series.
        assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]));
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn tick_labels_are_tidy() {
        let svg = sample_chart().to_svg();
        for label in [
            ">0.30</text>",
            ">0.36</text>",
            ">0.40</text>",
            ">5</text>",
            ">20</text>",
        ] {
            assert!(svg.contains(label), "missing tick label {label}");
        }
        assert_eq!(tick_label(0.30000000000000004, 0.02), "0.30");
        assert_eq!(tick_label(-0.0, 0.2), "0.0");
        assert_eq!(tick_label(2_000_000.0, 500_000.0), "2.0e6");
        assert_eq!(tick_label(0.00003, 0.00001), "3e-5");
    }

    #[test]
    fn text_is_escaped() {
        let mut chart = Chart::new("a < b & \"c\"", "x > 0", "it's");
        chart.series.push(Series::new(
            "<script>alert(1)</script>",
            vec![(0.0, 1.0), (1.0, 2.0)],
        ));
        chart.markers.push((0.5, "<best>".into()));
        let svg = chart.to_svg();
        check_xml(&svg);
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("<best>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("a &lt; b &amp; &quot;c&quot;"));
        assert!(svg.contains("x &gt; 0"));
        assert!(svg.contains("it&apos;s"));
        assert_eq!(escape("nul\u{0}bell\u{7}"), "nulbell");
    }

    #[test]
    fn non_finite_points_are_skipped() {
        let mut chart = Chart::new("loss with gaps", "epoch", "loss");
        chart.series.push(Series::new(
            "loss",
            vec![
                (0.0, 1.0),
                (1.0, f64::NAN),
                (2.0, 0.5),
                (3.0, 0.4),
                (f64::INFINITY, 0.3),
                (5.0, f64::NEG_INFINITY),
                (6.0, 0.2),
            ],
        ));
        chart
            .series
            .push(Series::new("all missing", vec![(f64::NAN, f64::NAN)]));
        chart.markers.push((f64::NAN, "bad marker".into()));
        let svg = chart.to_svg();
        let tags = check_xml(&svg);
        let lower = svg.to_lowercase();
        assert!(!lower.contains("nan"), "NaN leaked into output");
        assert!(!lower.contains("inf"), "inf leaked into output");
        // Segments: [0], [2, 3], [6] → one polyline, four data circles + two legend circles.
        assert_eq!(tags.iter().filter(|t| *t == "polyline").count(), 1);
        assert_eq!(tags.iter().filter(|t| *t == "circle").count(), 6);
        assert!(svg.contains(">all missing</text>"));
        assert!(!svg.contains("bad marker"));
    }

    #[test]
    fn empty_single_constant_and_negative() {
        // No series at all.
        let empty = Chart::new("empty", "x", "y").to_svg();
        check_xml(&empty);
        assert!(empty.contains("no data"));

        // A series without points still shows in the legend.
        let mut chart = Chart::new("empty series", "x", "y");
        chart.series.push(Series::new("nothing yet", Vec::new()));
        let svg = chart.to_svg();
        check_xml(&svg);
        assert!(svg.contains(">nothing yet</text>"));
        assert!(svg.contains("no data"));

        // A single point.
        let mut chart = Chart::new("single", "epoch", "P@5");
        chart.series.push(Series::new("g", vec![(1.0, 0.25)]));
        let svg = chart.to_svg();
        let tags = check_xml(&svg);
        assert_eq!(tags.iter().filter(|t| *t == "polyline").count(), 0);
        assert_eq!(tags.iter().filter(|t| *t == "circle").count(), 2);

        // Constant values: the y range is padded, the line sits mid-plot.
        let mut chart = Chart::new("flat", "epoch", "loss");
        chart.series.push(Series::new(
            "flat",
            (0..5).map(|e| (e as f64, 0.0)).collect(),
        ));
        let svg = chart.to_svg();
        check_xml(&svg);
        let mid = num((MARGIN_TOP + CHART_HEIGHT - MARGIN_BOTTOM) / 2.0);
        assert!(
            svg.contains(&format!(r#"cy="{mid}""#)),
            "flat line should be centred"
        );

        // Negative values.
        let mut chart = Chart::new("neg", "epoch", "reward");
        chart.series.push(Series::new(
            "reward",
            vec![(0.0, -3.5), (1.0, -1.0), (2.0, 0.5), (3.0, 2.0)],
        ));
        let svg = chart.to_svg();
        check_xml(&svg);
        assert!(svg.contains(">-4</text>") && svg.contains(">2</text>"));
    }

    #[test]
    fn many_series_cycle_palette_with_dashes() {
        let mut chart = Chart::new("many", "x", "y");
        for i in 0..12 {
            chart.series.push(Series::new(
                format!("s{i}"),
                vec![(0.0, i as f64), (1.0, i as f64 + 1.0)],
            ));
        }
        let svg = chart.to_svg();
        check_xml(&svg);
        for i in 0..12 {
            assert!(svg.contains(&format!(">s{i}</text>")));
        }
        assert!(svg.contains(r#"stroke-dasharray="6,3""#));
    }

    #[test]
    fn long_legend_names_are_squeezed_not_cut() {
        let long = "IRGAN generator, pointwise, temperature 0.2, lr 1e-3";
        let mut chart = Chart::new("t", "x", "y");
        chart
            .series
            .push(Series::new(long, vec![(0.0, 0.0), (1.0, 1.0)]));
        chart
            .series
            .push(Series::new("short", vec![(0.0, 1.0), (1.0, 0.0)]));
        chart.markers.push((0.9, "right side".into()));
        let svg = chart.to_svg();
        check_xml(&svg);
        assert!(svg.contains(long));
        assert_eq!(count(&svg, "textLength"), 1);
        assert!(svg.contains(r#"text-anchor="end" font-size="10""#));
    }

    #[test]
    fn stacked_charts() {
        let mut ndcg = sample_chart();
        ndcg.title = "NDCG@5".into();
        ndcg.y_label = "NDCG@5".into();
        let svg = stack_svg(&[sample_chart(), ndcg]);
        check_xml(&svg);
        assert_eq!(count(&svg, "<svg"), 1);
        assert!(svg.contains(r#"height="720""#));
        assert!(svg.contains(r#"transform="translate(0,0)""#));
        assert!(svg.contains(r#"transform="translate(0,360)""#));
        assert_eq!(count(&svg, ">generator</text>"), 2);
        assert!(svg.contains(">NDCG@5</text>"));

        let none = stack_svg(&[]);
        check_xml(&none);
    }

    #[test]
    fn extreme_values_stay_finite() {
        let mut chart = Chart::new("extreme", "x", "y");
        chart.series.push(Series::new(
            "huge",
            vec![(-f64::MAX, -f64::MAX), (f64::MAX, f64::MAX), (0.0, 1e-300)],
        ));
        let svg = chart.to_svg();
        check_xml(&svg);
        let lower = svg.to_lowercase();
        assert!(!lower.contains("nan") && !lower.contains("inf"));
    }
}
