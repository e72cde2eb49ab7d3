//! The search space used when a config declares none: the only place `irgan tune` names keys.
//!
//! It varies what matters most for the recommendation game, as far as the config uses it:
//! the pretraining of the players' starting point (iALS or BPR/DNS), both players' learning
//! rates, G's temperature in its own step and when it draws D's negatives, and the game's
//! epochs per outer round (outer epochs are the halving resource).

use crate::config::{Config, Init};
use crate::pipeline::tune::space::{Distribution, Space};

/// The default space for `cfg`.
pub fn default_space(cfg: &Config) -> Space {
    use Distribution::{Int, LogUniform};
    let inits = [cfg.generator.init, cfg.discriminator.init];
    let mut space = Space::default();
    if inits.contains(&Init::Als) {
        space = space
            .with("pretrain.als.alpha", LogUniform(1.0, 50.0))
            .with("pretrain.als.l2", LogUniform(0.1, 100.0))
            .with("pretrain.als.iterations", Int(5, 25));
    }
    if inits
        .iter()
        .any(|i| matches!(i, Init::Bpr | Init::Dns | Init::Apr))
    {
        space = space
            .with("pretrain.bpr.lr", LogUniform(0.005, 0.2))
            .with("pretrain.bpr.l2", LogUniform(1e-3, 0.3))
            .with("pretrain.bpr.epochs", Int(20, 120));
    }
    space
        .with("generator.lr", LogUniform(1e-4, 3e-2))
        .with("discriminator.lr", LogUniform(1e-4, 3e-2))
        .with("generator.temperature", LogUniform(0.2, 5.0))
        .with("irgan.d_temperature", LogUniform(0.1, 5.0))
        .with("irgan.d_epochs", Int(1, 20))
        .with("irgan.g_epochs", Int(1, 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretraining_keys_follow_the_configured_start() {
        let mut cfg = Config::default();
        let keys = |c: &Config| -> Vec<String> {
            default_space(c)
                .dimensions
                .into_iter()
                .map(|d| d.key)
                .collect()
        };
        assert!(!keys(&cfg).iter().any(|k| k.starts_with("pretrain.")));
        cfg.generator.init = Init::Als;
        assert!(keys(&cfg).contains(&"pretrain.als.alpha".to_string()));
        cfg.discriminator.init = Init::Dns;
        assert!(keys(&cfg).contains(&"pretrain.bpr.lr".to_string()));
        assert!(keys(&cfg).contains(&"irgan.g_epochs".to_string()));
    }

    #[test]
    fn every_default_key_and_range_is_a_valid_config() {
        let mut cfg = Config::default();
        cfg.generator.init = Init::Als;
        cfg.discriminator.init = Init::Bpr;
        for d in default_space(&cfg).dimensions {
            for v in d.distribution.probes() {
                let set = format!("{}={v}", d.key);
                Config::load(None, std::slice::from_ref(&set))
                    .unwrap_or_else(|e| panic!("{set}: {e}"));
            }
        }
    }
}
