//! tenure (placeholder, replaced below)
