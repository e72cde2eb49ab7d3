//! Training reports: per-epoch JSONL log, `report.json`, and an SVG training curve.

pub mod plot;
