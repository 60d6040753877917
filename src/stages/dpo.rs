//! Stage 2 (placeholder until the stage lands).
