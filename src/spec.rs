//! Settings as text: one grammar for activations, losses, initializers, noise and penalties,
//! read with [`str::parse`] ([`FromStr`]) and written back with [`Display`] (`to_string`
//! then `parse` gives the same value). The command-line tool, the examples and any
//! configuration file of a user's use the same forms:
//!
//! | type | forms |
//! | --- | --- |
//! | [`Activation`] | `identity` (or `linear`), `relu`, `leaky-relu[:ALPHA]` (0.01), `sigmoid`, `tanh`, `softplus`, `elu[:ALPHA]` (1), `gelu` |
//! | [`Loss`] | `mse`, `sse`, `bce`, `bce-sum`, `mae`, `huber[:DELTA]` (1) |
//! | [`Init`] | `glorot` (or `glorot-uniform`), `glorot-normal`, `he` (or `he-uniform`), `he-normal` |
//! | [`Noise`] | `masking:F`, `salt-pepper:F`, `gaussian:STD`, `gaussian:STD:LO:HI` (clipped to `[LO, HI]`) |
//! | [`Penalty`] | `l1-activity:L`, `l2-activity:L`, `kl:RHO:BETA`, `contractive:L` (each may end in `@LAYER`, a hidden layer's index; default the code layer), `l2-weights:L`, `l1-weights:L` (each may end in `+biases`), `gaussian-kl:BETA[:WARMUP_EPOCHS]` |
//!
//! Numbers are Rust's `f64` and `usize` forms (`1e-4`, `0.05`). Parsing checks the values
//! as the constructors do, so a parsed setting is a valid one.
//!
//! ```
//! use autoencoder::{Activation, Loss, Noise, Penalty};
//! # fn main() -> autoencoder::Result<()> {
//! assert_eq!("leaky-relu:0.2".parse::<Activation>()?, Activation::LeakyRelu(0.2));
//! assert_eq!("huber:0.5".parse::<Loss>()?, Loss::Huber(0.5));
//! assert_eq!("masking:0.3".parse::<Noise>()?, Noise::Masking { fraction: 0.3 });
//! let kl: Penalty = "kl:0.05:3@1".parse()?;
//! assert_eq!(kl, Penalty::kl_sparsity(0.05, 3.0)?.on_layer(1).into());
//! assert_eq!(kl.to_string(), "kl:0.05:3@1");
//! assert!("kl:1.5:3".parse::<Penalty>().is_err()); // rho must lie in (0, 1)
//! # Ok(()) }
//! ```

use std::fmt::{self, Display, Formatter};
use std::str::FromStr;

use crate::activation::Activation;
use crate::data::noise::Noise;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::model::latent::GaussianKl;
use crate::objective::activity::{Activity, ActivityPenalty};
use crate::objective::loss::Loss;
use crate::objective::weight::{Biases, Norm, WeightPenalty};
use crate::objective::Penalty;

/// The error for text that is not one of `what`'s forms.
fn unknown(what: &str, text: &str, forms: &str) -> Error {
    Error::InvalidConfig(format!("unknown {what} `{text}`: expected one of {forms}"))
}

/// `text` as a number, or an error naming the setting it is for.
fn number<N: FromStr>(what: &str, text: &str, value: &str) -> Result<N> {
    value.parse().map_err(|_| {
        Error::InvalidConfig(format!(
            "{what} `{text}`: `{value}` is not a number of the expected kind"
        ))
    })
}

/// `name`, then its `:`-separated parameters.
fn split(text: &str) -> (&str, Vec<&str>) {
    let mut parts = text.split(':');
    let name = parts.next().unwrap_or_default();
    (name, parts.collect())
}

/// The parameters of `text` as numbers, when there are between `min` and `max` of them.
fn params(what: &str, text: &str, p: &[&str], min: usize, max: usize) -> Result<Vec<f64>> {
    if p.len() < min || p.len() > max {
        let n = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(Error::InvalidConfig(format!(
            "{what} `{text}` takes {n} `:`-separated parameter(s), found {}",
            p.len()
        )));
    }
    p.iter().map(|v| number(what, text, v)).collect()
}

const ACTIVATIONS: &str =
    "identity, relu, leaky-relu[:ALPHA], sigmoid, tanh, softplus, elu[:ALPHA], gelu";

impl FromStr for Activation {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, p) = split(text);
        let one = |default| -> Result<f64> {
            Ok(params("activation", text, &p, 0, 1)?
                .first()
                .copied()
                .unwrap_or(default))
        };
        let none = || params("activation", text, &p, 0, 0);
        let activation = match name {
            "identity" | "linear" => none().map(|_| Activation::Identity)?,
            "relu" => none().map(|_| Activation::Relu)?,
            "leaky-relu" => Activation::LeakyRelu(one(0.01)?),
            "sigmoid" => none().map(|_| Activation::Sigmoid)?,
            "tanh" => none().map(|_| Activation::Tanh)?,
            "softplus" => none().map(|_| Activation::Softplus)?,
            "elu" => Activation::Elu(one(1.0)?),
            "gelu" => none().map(|_| Activation::Gelu)?,
            _ => return Err(unknown("activation", text, ACTIVATIONS)),
        };
        activation.validate()?;
        Ok(activation)
    }
}

impl Display for Activation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Identity => write!(f, "identity"),
            Activation::Relu => write!(f, "relu"),
            Activation::LeakyRelu(alpha) => write!(f, "leaky-relu:{alpha}"),
            Activation::Sigmoid => write!(f, "sigmoid"),
            Activation::Tanh => write!(f, "tanh"),
            Activation::Softplus => write!(f, "softplus"),
            Activation::Elu(alpha) => write!(f, "elu:{alpha}"),
            Activation::Gelu => write!(f, "gelu"),
        }
    }
}

const LOSSES: &str = "mse, sse, bce, bce-sum, mae, huber[:DELTA]";

impl FromStr for Loss {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, p) = split(text);
        let none = || params("loss", text, &p, 0, 0);
        let loss = match name {
            "mse" => none().map(|_| Loss::MeanSquaredError)?,
            "sse" => none().map(|_| Loss::SumSquaredError)?,
            "bce" => none().map(|_| Loss::BinaryCrossEntropy)?,
            "bce-sum" => none().map(|_| Loss::BinaryCrossEntropySum)?,
            "mae" => none().map(|_| Loss::MeanAbsoluteError)?,
            "huber" => {
                let delta = params("loss", text, &p, 0, 1)?.first().copied();
                Loss::Huber(delta.unwrap_or(1.0))
            }
            _ => return Err(unknown("loss", text, LOSSES)),
        };
        if let Loss::Huber(delta) = loss {
            crate::error::check_positive("huber delta", delta)?;
        }
        Ok(loss)
    }
}

impl Display for Loss {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Loss::BinaryCrossEntropySum => write!(f, "bce-sum"),
            Loss::Huber(delta) => write!(f, "huber:{delta}"),
            other => write!(f, "{}", other.name()),
        }
    }
}

const INITS: &str = "glorot, glorot-normal, he, he-normal";

impl FromStr for Init {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "glorot" | "glorot-uniform" => Ok(Init::GlorotUniform),
            "glorot-normal" => Ok(Init::GlorotNormal),
            "he" | "he-uniform" => Ok(Init::HeUniform),
            "he-normal" => Ok(Init::HeNormal),
            _ => Err(unknown("initializer", text, INITS)),
        }
    }
}

impl Display for Init {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Init::GlorotUniform => "glorot",
            Init::GlorotNormal => "glorot-normal",
            Init::HeUniform => "he",
            Init::HeNormal => "he-normal",
        })
    }
}

const NOISES: &str = "masking:F, salt-pepper:F, gaussian:STD, gaussian:STD:LO:HI";

impl FromStr for Noise {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, p) = split(text);
        let noise = match name {
            "masking" => Noise::Masking {
                fraction: params("noise", text, &p, 1, 1)?[0],
            },
            "salt-pepper" | "salt-and-pepper" => Noise::SaltAndPepper {
                fraction: params("noise", text, &p, 1, 1)?[0],
            },
            "gaussian" => match params("noise", text, &p, 1, 3)?[..] {
                [std] => Noise::Gaussian { std, clip: None },
                [std, lo, hi] => Noise::Gaussian {
                    std,
                    clip: Some((lo, hi)),
                },
                _ => {
                    return Err(Error::InvalidConfig(format!(
                        "noise `{text}`: a clip range needs both bounds, gaussian:STD:LO:HI"
                    )))
                }
            },
            _ => return Err(unknown("noise", text, NOISES)),
        };
        noise.validate()?;
        Ok(noise)
    }
}

impl Display for Noise {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Noise::Masking { fraction } => write!(f, "masking:{fraction}"),
            Noise::SaltAndPepper { fraction } => write!(f, "salt-pepper:{fraction}"),
            Noise::Gaussian { std, clip: None } => write!(f, "gaussian:{std}"),
            Noise::Gaussian {
                std,
                clip: Some((lo, hi)),
            } => write!(f, "gaussian:{std}:{lo}:{hi}"),
        }
    }
}

const PENALTIES: &str = "l1-activity:L, l2-activity:L, kl:RHO:BETA, contractive:L (each \
                         [@LAYER]), l2-weights:L, l1-weights:L (each [+biases]), \
                         gaussian-kl:BETA[:WARMUP_EPOCHS]";

impl FromStr for Penalty {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        // Suffixes first: `@LAYER` for activity penalties, `+biases` for weight penalties.
        let (body, layer) = match text.rsplit_once('@') {
            Some((body, layer)) => (body, Some(number::<usize>("penalty", text, layer)?)),
            None => (text, None),
        };
        let (body, biases) = match body.strip_suffix("+biases") {
            Some(body) => (body, true),
            None => (body, false),
        };
        let (name, p) = split(body);
        let one = || params("penalty", text, &p, 1, 1).map(|v| v[0]);
        let activity = match name {
            "l1-activity" => Some(Penalty::l1_activity(one()?)?),
            "l2-activity" => Some(Penalty::l2_activity(one()?)?),
            "contractive" => Some(Penalty::contractive(one()?)?),
            "kl" => {
                let v = params("penalty", text, &p, 2, 2)?;
                Some(Penalty::kl_sparsity(v[0], v[1])?)
            }
            _ => None,
        };
        let misplaced = |suffix: &str| {
            Error::InvalidConfig(format!(
                "penalty `{text}`: `{suffix}` does not apply to `{name}`"
            ))
        };
        if let Some(penalty) = activity {
            if biases {
                return Err(misplaced("+biases"));
            }
            return Ok(match layer {
                Some(i) => penalty.on_layer(i),
                None => penalty,
            }
            .into());
        }
        if layer.is_some() {
            return Err(misplaced("@LAYER"));
        }
        let weights = match name {
            "l2-weights" => Some(Penalty::l2_weights(one()?)?),
            "l1-weights" => Some(Penalty::l1_weights(one()?)?),
            _ => None,
        };
        if let Some(penalty) = weights {
            return Ok(if biases {
                penalty.with_biases()
            } else {
                penalty
            }
            .into());
        }
        if biases {
            return Err(misplaced("+biases"));
        }
        match name {
            "gaussian-kl" => {
                let v = params("penalty", text, &p, 1, 2)?;
                let kl = Penalty::gaussian_kl(v[0])?;
                Ok(match p.get(1) {
                    Some(w) => kl.warmup(number("penalty", text, w)?),
                    None => kl,
                }
                .into())
            }
            _ => Err(unknown("penalty", text, PENALTIES)),
        }
    }
}

impl Display for ActivityPenalty {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.activity() {
            Activity::L1 { lambda } => write!(f, "l1-activity:{lambda}")?,
            Activity::L2 { lambda } => write!(f, "l2-activity:{lambda}")?,
            Activity::KlSparsity { rho, beta } => write!(f, "kl:{rho}:{beta}")?,
            Activity::Contractive { lambda } => write!(f, "contractive:{lambda}")?,
        }
        match self.layer() {
            Some(i) => write!(f, "@{i}"),
            None => Ok(()),
        }
    }
}

impl Display for WeightPenalty {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = match self.norm() {
            Norm::L2 => "l2-weights",
            Norm::L1 => "l1-weights",
        };
        write!(f, "{name}:{}", self.lambda())?;
        match self.biases() {
            Biases::Included => write!(f, "+biases"),
            Biases::Excluded => Ok(()),
        }
    }
}

impl Display for GaussianKl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "gaussian-kl:{}", self.beta())?;
        match self.warmup_epochs() {
            0 => Ok(()),
            n => write!(f, ":{n}"),
        }
    }
}

impl Display for Penalty {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Penalty::Activity(p) => p.fmt(f),
            Penalty::Weight(p) => p.fmt(f),
            Penalty::GaussianKl(p) => p.fmt(f),
        }
    }
}
