//! The special token ids every vocabulary of the lab reserves, first, in this order. The model
//! never writes PAD, BOS or UNK (`Gpt::logits` gives them −1e9), and generation stops a row at
//! EOS and pads it with PAD; the task's vocabulary (`rlhf::task::vocab`) starts its words after them.

/// Padding after a completion ends. Never EOS: masking EOS as padding corrupts values and
/// advantages at the last real token.
pub const PAD: u32 = 0;
/// Start of every sequence.
pub const BOS: u32 = 1;
/// End of a completion; the reward model reads its score here.
pub const EOS: u32 = 2;
/// A word outside the vocabulary.
pub const UNK: u32 = 3;
/// Their spellings, in id order.
pub const SPECIALS: [&str; 4] = ["<pad>", "<bos>", "<eos>", "<unk>"];
