//! Training curves as SVG line charts, drawn by `plotters` on its in-memory SVG backend.
//!
//! A [`Chart`] holds a title, axis labels, any number of [`Series`] and optional vertical
//! markers (for example the selected epoch). [`Chart::to_svg`] renders one chart as a standalone
//! SVG document; [`stack_svg`] stacks several charts vertically in one document (for example a
//! validation panel above the game's statistics).
//!
//! Robustness rules:
//! - non-finite points (NaN, ±inf) are skipped and break the line into separate segments;
//! - an empty series still appears in the legend; a chart without any finite point says "no data";
//! - a zero-width range (a single point, constant values) is padded so the axis stays readable;
//! - text is XML-escaped by the backend; characters XML 1.0 forbids are dropped here.
//!
//! plotters is built without its `ttf` feature: text is sized by its built-in estimate and the
//! viewer's `sans-serif` draws the glyphs, so rendering needs no system fonts.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
pub const CHART_WIDTH: u32 = 720;
/// Height of one chart in SVG user units (pixels); stacked charts add up.
pub const CHART_HEIGHT: u32 = 360;

/// Room right of the plot area for the legend.
const LEGEND_WIDTH: u32 = 180;
/// Coordinates are clamped to ±this so spans and paddings never overflow `f64`.
const LIMIT: f64 = 1e300;

/// Tableau-10 colours: distinct and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];
/// Dash (length, gap) used once the palette has been cycled through, so series stay
/// distinguishable; `None` is a solid line.
const DASHES: [Option<(u32, u32)>; 3] = [None, Some((6, 3)), Some((2, 2))];
const GRID: RGBColor = RGBColor(0xe0, 0xe0, 0xe0);
const MARKER: RGBColor = RGBColor(0x55, 0x55, 0x55);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

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

    /// Draws the chart (axes, series, markers) filling `area`, its legend in a column on the right.
    fn draw(&self, area: &Area) -> DrawResult {
        let finite = self
            .series
            .iter()
            .flat_map(|s| finite_points(&s.points))
            .collect::<Vec<_>>();
        let markers: Vec<(f64, String)> = self
            .markers
            .iter()
            .filter(|m| m.0.is_finite())
            .map(|(x, label)| (clamp(*x), clean(label)))
            .collect();
        let xs = finite
            .iter()
            .map(|p| p.0)
            .chain(markers.iter().map(|m| m.0));
        let x_range = range(xs);
        let y_range = range(finite.iter().map(|p| p.1));

        // plotters clips everything a chart draws to its plotting area, legend included, so the
        // legend gets its own column instead of covering the lines.
        let (plot_area, legend_area) = area.split_horizontally(CHART_WIDTH - LEGEND_WIDTH);
        let title = ("sans-serif", 18).into_font().style(FontStyle::Bold);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(clean(&self.title), title)
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range.clone(), y_range.clone())?;
        chart
            .configure_mesh()
            .x_desc(clean(&self.x_label))
            .y_desc(clean(&self.y_label))
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&tick_label)
            .y_label_formatter(&tick_label)
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .draw()?;

        // Vertical markers under the series, each labelled near the top on its roomier side.
        let mid = (x_range.start + x_range.end) / 2.0;
        for (x, label) in &markers {
            chart.draw_series(std::iter::once(DashedPathElement::new(
                [(*x, y_range.start), (*x, y_range.end)],
                5,
                4,
                MARKER.stroke_width(1),
            )))?;
            let (dx, side) = if *x > mid {
                (-4, HPos::Right)
            } else {
                (4, HPos::Left)
            };
            let font = ("sans-serif", 13).into_font().color(&MARKER);
            let text = Text::new(label.clone(), (dx, 4), font.pos(Pos::new(side, VPos::Top)));
            chart.draw_series(std::iter::once(EmptyElement::at((*x, y_range.end)) + text))?;
        }

        for (i, s) in self.series.iter().enumerate() {
            let (colour, dash) = style(i);
            let line = colour.stroke_width(2);
            // Each run of finite points is its own line, so missing values leave a gap.
            for run in runs(&s.points).filter(|r| r.len() >= 2) {
                let run = run.iter().map(|&(x, y)| (clamp(x), clamp(y)));
                match dash {
                    None => chart.draw_series(LineSeries::new(run, line))?,
                    Some((d, g)) => chart.draw_series(DashedLineSeries::new(run, d, g, line))?,
                };
            }
            let dots = finite_points(&s.points).map(|p| Circle::new(p, 2, colour.filled()));
            chart.draw_series(dots)?;
        }

        if finite.is_empty() {
            let centre = (
                (x_range.start + x_range.end) / 2.0,
                (y_range.start + y_range.end) / 2.0,
            );
            let style = ("sans-serif", 16)
                .into_font()
                .color(&MARKER)
                .pos(Pos::new(HPos::Center, VPos::Center));
            chart.draw_series(std::iter::once(Text::new("no data", centre, style)))?;
        }

        // Legend rows start level with the top of the plotting area.
        let top = chart.plotting_area().get_pixel_range().1.start - legend_area.get_base_pixel().1;
        let longest = self.series.iter().map(|s| s.name.chars().count()).max();
        let font = ("sans-serif", legend_font_size(longest.unwrap_or(0)))
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, s) in self.series.iter().enumerate() {
            let (colour, dash) = style(i);
            let y = top + 8 + 18 * i as i32;
            // A solid swatch is a single dash as long as the swatch.
            let (d, g) = dash.unwrap_or((22, 0));
            let swatch = [(4, y), (26, y)];
            legend_area.draw(&DashedPathElement::new(
                swatch,
                d,
                g,
                colour.stroke_width(2),
            ))?;
            legend_area.draw(&Circle::new((15, y), 2, colour.filled()))?;
            legend_area.draw(&Text::new(clean(&s.name), (32, y), font.clone()))?;
        }
        Ok(())
    }
}

/// Renders several charts stacked vertically in one SVG document.
///
/// The document is [`CHART_WIDTH`] wide and `charts.len()` × [`CHART_HEIGHT`] high; each chart
/// keeps its own axes, ranges and legend.
pub fn stack_svg(charts: &[Chart]) -> String {
    let height = u32::try_from(charts.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(CHART_HEIGHT);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH, height)).into_drawing_area();
        // Drawing into a string with the built-in text estimate cannot fail in practice; if it
        // ever does, the curve is a diagnostic and not worth failing a training run over.
        if let Err(e) = draw_stack(&root, charts) {
            tracing::warn!(error = %e, "training curve left incomplete");
        }
    }
    svg
}

fn draw_stack(root: &Area, charts: &[Chart]) -> DrawResult {
    root.fill(&WHITE)?;
    if charts.is_empty() {
        return Ok(());
    }
    for (area, chart) in root.split_evenly((charts.len(), 1)).iter().zip(charts) {
        chart.draw(area)?;
    }
    root.present()
}

/// Colour and dash pattern (`None`: solid) of the `i`-th series.
fn style(i: usize) -> (RGBColor, Option<(u32, u32)>) {
    (
        PALETTE[i % PALETTE.len()],
        DASHES[(i / PALETTE.len()) % DASHES.len()],
    )
}

/// Legend text size so the longest name fits beside its swatch.
fn legend_font_size(longest: usize) -> f64 {
    // plotters writes `font-size` as size / 1.24; a sans-serif glyph is ~0.55 em wide.
    let room = f64::from(LEGEND_WIDTH) - 38.0;
    (room / (0.55 * longest.max(1) as f64) * 1.24).clamp(8.0, 15.0)
}

/// A tick label: integers without ".0", at most 5 decimals, scientific notation when shorter.
fn tick_label(v: &f64) -> String {
    plotters::data::float::FloatPrettyPrinter {
        allow_scientific: true,
        min_decimal: 0,
        max_decimal: 5,
    }
    .print(*v)
}

/// The finite points of a series, clamped into the drawable range.
fn finite_points(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&(x, y)| (clamp(x), clamp(y)))
}

/// Splits points into runs of finite points, breaking at any non-finite one.
fn runs(points: &[(f64, f64)]) -> impl Iterator<Item = &[(f64, f64)]> {
    points
        .split(|&(x, y)| !x.is_finite() || !y.is_finite())
        .filter(|s| !s.is_empty())
}

/// Keeps a finite coordinate within ±[`LIMIT`].
fn clamp(v: f64) -> f64 {
    v.clamp(-LIMIT, LIMIT)
}

/// Axis range over finite values with 5 % room either side; 0..1 without values, and a
/// zero-width range padded (by 10 % of the value, or ±1 around zero).
fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let bounds = values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((v.min(lo), v.max(hi))),
    });
    let Some((lo, hi)) = bounds else {
        return 0.0..1.0;
    };
    if hi > lo {
        let room = (hi - lo) * 0.05;
        return lo - room..hi + room;
    }
    let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    lo - d..hi + d
}

/// Drops control characters (XML 1.0 forbids most of them) and the non-characters U+FFFE and
/// U+FFFF; the backend escapes the rest.
fn clean(text: &str) -> String {
    let allowed = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    text.chars()
        .filter(|&c| allowed(c) && !matches!(c, '\u{fffe}' | '\u{ffff}'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the document with a real XML parser (it must be well-formed SVG) and returns the
    /// element names in document order and the contents of the `<text>` elements.
    fn check_xml(svg: &str) -> (Vec<String>, Vec<String>) {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let elements = doc.descendants().filter(|n| n.is_element());
        let tags = elements.clone().map(|n| n.tag_name().name().to_owned());
        let texts = elements
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").trim().to_owned());
        (tags.collect(), texts.collect())
    }

    fn has_text(svg: &str, text: &str) -> bool {
        check_xml(svg).1.iter().any(|t| t == text)
    }

    fn tag_count(svg: &str, name: &str) -> usize {
        check_xml(svg).0.iter().filter(|t| *t == name).count()
    }

    fn count(doc: &str, needle: &str) -> usize {
        doc.matches(needle).count()
    }

    fn colour(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
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
    fn chart_is_well_formed_with_legend_and_markers() {
        let svg = sample_chart().to_svg();
        assert_eq!(count(&svg, "<svg"), 1);
        assert!(svg.contains(r#"width="720""#) && svg.contains(r#"height="360""#));
        assert!(has_text(&svg, "generator"));
        assert!(has_text(&svg, "discriminator"));
        assert!(has_text(&svg, "IRGAN training"));
        assert!(has_text(&svg, "epoch") && has_text(&svg, "P@5"));
        assert!(has_text(&svg, "selected (epoch 12)"));
        // 20 points per series plus one legend dot each.
        assert_eq!(tag_count(&svg, "circle"), 42);
        assert!(tag_count(&svg, "polyline") >= 2);
        // Distinct colours for the two series.
        assert!(svg.contains(&colour(PALETTE[0])) && svg.contains(&colour(PALETTE[1])));
        assert!(!svg.contains("no data"));
        // Tick labels come with the axes.
        assert!(has_text(&svg, "10") && has_text(&svg, "0.35"), "{svg}");
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
        assert_eq!(clean("nul\u{0}bell\u{7}"), "nulbell");
        let svg = Chart::new("nul\u{0}", "x", "y").to_svg();
        assert!(!svg.contains('\u{0}'));
    }

    #[test]
    fn non_finite_points_leave_gaps() {
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
        let lower = svg.to_lowercase();
        assert!(!lower.contains("nan"), "NaN leaked into output");
        assert!(!lower.contains("inf"), "inf leaked into output");
        // Runs [0], [2, 3], [6]: one data line, plus the legend swatch.
        let lines = format!(r#"stroke="{}" stroke-width="2""#, colour(PALETTE[0]));
        assert_eq!(count(&svg, &lines), 2, "{svg}");
        // Four data dots + two legend dots.
        assert_eq!(tag_count(&svg, "circle"), 6);
        assert!(has_text(&svg, "all missing"));
        assert!(!svg.contains("bad marker"));
    }

    #[test]
    fn empty_single_constant_and_negative() {
        // No series at all.
        let empty = Chart::new("empty", "x", "y").to_svg();
        check_xml(&empty);
        assert!(has_text(&empty, "no data"));

        // A series without points still shows in the legend.
        let mut chart = Chart::new("empty series", "x", "y");
        chart.series.push(Series::new("nothing yet", Vec::new()));
        let svg = chart.to_svg();
        check_xml(&svg);
        assert!(has_text(&svg, "nothing yet"));
        assert!(has_text(&svg, "no data"));

        // A single point: a dot, no line.
        let mut chart = Chart::new("single", "epoch", "P@5");
        chart.series.push(Series::new("g", vec![(1.0, 0.25)]));
        assert_eq!(tag_count(&chart.to_svg(), "circle"), 2);

        // Constant values: the y range is padded around the value.
        let mut chart = Chart::new("flat", "epoch", "loss");
        chart.series.push(Series::new(
            "flat",
            (0..5).map(|e| (e as f64, 0.0)).collect(),
        ));
        check_xml(&chart.to_svg());
        assert_eq!(range([0.0, 0.0].into_iter()), -1.0..1.0);
        let r = range([0.5].into_iter());
        assert!(r.start < 0.5 && r.end > 0.5);

        // Negative values.
        let mut chart = Chart::new("neg", "epoch", "reward");
        chart.series.push(Series::new(
            "reward",
            vec![(0.0, -3.5), (1.0, -1.0), (2.0, 0.5), (3.0, 2.0)],
        ));
        let svg = chart.to_svg();
        check_xml(&svg);
        assert!(has_text(&svg, "-2.0") || has_text(&svg, "-2"), "{svg}");
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
            assert!(has_text(&svg, &format!("s{i}")));
        }
        // The 11th series reuses the first colour, dashed: many short strokes.
        let first_colour = |svg: &str| count(svg, &format!(r#"stroke="{}""#, colour(PALETTE[0])));
        let mut ten = chart.clone();
        ten.series.truncate(10);
        assert!(first_colour(&svg) > first_colour(&ten.to_svg()) + 2);
    }

    #[test]
    fn long_legend_names_shrink_and_right_markers_label_leftwards() {
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
        assert!(has_text(&svg, long));
        assert!(legend_font_size(long.len()) < legend_font_size("short".len()));
        // A marker right of the middle is labelled on its left.
        let doc = roxmltree::Document::parse(&svg).expect("XML");
        let label = doc
            .descendants()
            .find(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some("right side"))
            .expect("marker label");
        assert_eq!(label.attribute("text-anchor"), Some("end"));
    }

    #[test]
    fn stacked_charts() {
        let mut ndcg = sample_chart();
        ndcg.title = "NDCG@5".into();
        ndcg.y_label = "NDCG@5".into();
        let svg = stack_svg(&[sample_chart(), ndcg]);
        assert_eq!(count(&svg, "<svg"), 1);
        assert!(svg.contains(r#"height="720""#));
        let (_, texts) = check_xml(&svg);
        assert_eq!(texts.iter().filter(|t| *t == "generator").count(), 2);
        assert!(has_text(&svg, "NDCG@5"));
        // The second panel's title sits in the lower half.
        let doc = roxmltree::Document::parse(&svg).expect("XML");
        let title = doc
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("font-weight") == Some("bold"))
            .find(|n| n.text().map(str::trim) == Some("NDCG@5"))
            .expect("second title");
        let y: Option<f64> = title.attribute("y").and_then(|y| y.parse().ok());
        assert!(y.is_some_and(|y| y >= 360.0), "{title:?}");

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
