//! A supervised trainer as bytes (`engine::snapshot`).

use burn::module::Module;
use serde::{Deserialize, Serialize};

use super::{Objective, SupervisedTrainer};
use crate::engine::optim::AdamCounters;
use crate::error::{LabError, Result};

/// What a snapshot carries besides the weights and Adam's moments: the step, the objective's
/// cursor (its own fields: `corpus`, `batches`) and Adam's counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State<S> {
    step: usize,
    #[serde(flatten)]
    cursor: S,
    adam: AdamCounters,
}

impl<O: Objective> SupervisedTrainer<O> {
    /// The trainer as bytes (see `engine::snapshot`); `settings` identifies the run it belongs to.
    pub async fn snapshot(&self, settings: serde_json::Value) -> Result<Vec<u8>> {
        let model = crate::engine::checkpoint::record_bytes(&self.model.valid()).await?;
        let (adam, moments) = self.optim.export().await?;
        let state = State { step: self.step, cursor: self.cursor.clone(), adam };
        let mut blobs = vec![model];
        blobs.extend(moments);
        Ok(crate::engine::snapshot::pack(&crate::engine::snapshot::Meta { stage: O::NAMES.stage.into(), settings, state }, &blobs))
    }

    /// Continues from a snapshot taken under the same `settings`; changes nothing if it refuses.
    pub fn restore(&mut self, bytes: &[u8], settings: &serde_json::Value) -> Result<()> {
        let (state, blobs): (State<O::Cursor>, _) = crate::engine::snapshot::unpack(bytes, O::NAMES.stage, settings)?;
        let (model, moments) = blobs.split_first().ok_or_else(|| LabError::Checkpoint(format!("the {} snapshot has no weights", O::NAMES.title)))?;
        let model = crate::engine::checkpoint::load_record(self.model.valid(), model)?.train();
        let mut optim = self.optim.clone();
        optim.import(&state.adam, moments, &self.device)?;
        (self.model, self.optim, self.step, self.cursor) = (model, optim, state.step, state.cursor);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::stages::supervised::Shuffled;
    use crate::rlhf::stages::Batches;
    use crate::rng::Rng;

    /// The state's JSON is what the stages wrote before they shared this trainer (a struct of
    /// `step`, the cursor's own field, `adam`), so their older snapshots still resume.
    #[test]
    fn the_state_is_written_as_the_stages_wrote_it() {
        #[derive(Serialize)]
        struct Before {
            step: usize,
            batches: Batches,
            adam: AdamCounters,
        }
        let batches = Batches::new(5, Rng::new(3));
        let adam = AdamCounters { time: 4, has_moments: true };
        let now = State { step: 2, cursor: Shuffled { batches: batches.clone() }, adam: adam.clone() };
        let before = serde_json::to_string(&Before { step: 2, batches, adam }).unwrap();
        assert_eq!(serde_json::to_string(&now).unwrap(), before);
        let back: State<Shuffled> = serde_json::from_str(&before).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), before);
    }
}
