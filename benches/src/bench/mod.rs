//! Runs the sensor and ndpiReader on the generated captures.
