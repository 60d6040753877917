//! Where a completion's reward comes from, with what it needs: r_φ (scored on the device, inside
//! the rollout's one readback) or a program — the gold utility, the learner's expression — run on
//! the host after it.

use super::recipe::RewardSource;
use crate::engine::model::ScalarModel;
use crate::rlhf::reward_expression::RewardExpression;
use crate::rlhf::task::{Completion, Tokenizer};

/// What a completion's reward is computed with (`RewardSource`, with what it needs).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per trainer: boxing r_φ would buy nothing
pub enum Reward {
    /// r_φ, on the device at the last real token.
    Model(ScalarModel),
    /// The gold utility, on the host.
    Gold,
    /// The learner's expression, on the host.
    Custom(RewardExpression),
}

impl Reward {
    pub fn source(&self) -> RewardSource {
        match self {
            Self::Model(_) => RewardSource::RewardModel,
            Self::Gold => RewardSource::Gold,
            Self::Custom(_) => RewardSource::Custom,
        }
    }

    pub fn model(&self) -> Option<&ScalarModel> {
        match self {
            Self::Model(model) => Some(model),
            _ => None,
        }
    }

    /// The reward of `completion` when a program computes it (`None`: r_φ on the device does).
    pub fn on_host(&self, completion: &Completion, tokenizer: &Tokenizer) -> Option<f32> {
        match self {
            Self::Model(_) => None,
            Self::Gold => Some(completion.gold(tokenizer).total),
            Self::Custom(expression) => Some(expression.evaluate(completion, tokenizer)),
        }
    }
}
