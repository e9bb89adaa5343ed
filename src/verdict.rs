//! What the tracker says about one packet.
