//! The configuration model: every directive of nginx-rtmp-module, value parsing, defaults, merge.
