//! How the service's settings layer: an override changes one key and keeps every other
//! default.

use irgan::online::settings::ServiceConfig;

/// `--set training.generator.dim=8` (or `IRGAN_TRAINING__GENERATOR__DIM=8`) must change that
/// key only: the rest of the `training` section keeps the service's online defaults (iALS
/// start, Adam, ...), not the offline `irgan train` defaults.
#[test]
fn training_overrides_keep_the_online_defaults() {
    let defaults = ServiceConfig::default();
    for (env, sets) in [
        (vec![], vec!["training.generator.dim=8".to_owned()]),
        (
            vec![("IRGAN_TRAINING__GENERATOR__DIM".to_owned(), "8".to_owned())],
            vec![],
        ),
    ] {
        let cfg = ServiceConfig::load(None, env.clone(), &sets).expect("load");
        let mut want = defaults.clone();
        want.training.generator.dim = 8;
        assert_eq!(
            cfg.training.generator.init, want.training.generator.init,
            "{env:?} {sets:?} reset generator.init"
        );
        assert_eq!(
            cfg.training.pretrain.als, want.training.pretrain.als,
            "{env:?} {sets:?} reset pretrain.als"
        );
        assert_eq!(cfg, want, "{env:?} {sets:?} changed more than one key");
    }
    // A server override keeps the other server defaults (no nested section involved).
    let cfg = ServiceConfig::load(None, vec![], &["server.max_k=50".to_owned()]).expect("load");
    let mut want = defaults;
    want.server.max_k = 50;
    assert_eq!(cfg, want);
}
