//! The netfilter-exact TCP connection tracker.
