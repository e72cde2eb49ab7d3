//! The model a request names, as the API shows it: the wire form (serde, OpenAPI schema) of
//! the domain's [`crate::online::query::ModelChoice`].

use crate::api::Error;
use crate::online::query::ModelChoice as Domain;

/// Which model ranks.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ModelChoice {
    /// G's policy: rank by G's log-probability.
    #[default]
    Generator,
    /// D's critic: rank by D's probability.
    Discriminator,
    /// Both: rank by the weighted sum of the standardised scores.
    Blend,
}

impl ModelChoice {
    /// The lowercase name (`"generator"`, `"discriminator"`, `"blend"`), as in serde.
    pub fn as_str(self) -> &'static str {
        Domain::from(self).as_str()
    }

    /// Parses a model name (`generator`, `discriminator`, `blend`; ASCII case ignored);
    /// `invalid_parameter` otherwise.
    pub fn parse(name: &str) -> Result<Self, Error> {
        name.parse::<Domain>()
            .map(Self::from)
            .map_err(|e| Error::parameter(format!("model: {e}")))
    }
}

impl std::fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ModelChoice> for Domain {
    fn from(m: ModelChoice) -> Self {
        match m {
            ModelChoice::Generator => Self::Generator,
            ModelChoice::Discriminator => Self::Discriminator,
            ModelChoice::Blend => Self::Blend,
        }
    }
}

impl From<Domain> for ModelChoice {
    fn from(m: Domain) -> Self {
        match m {
            Domain::Generator => Self::Generator,
            Domain::Discriminator => Self::Discriminator,
            Domain::Blend => Self::Blend,
        }
    }
}
