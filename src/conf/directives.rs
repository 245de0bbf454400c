//! The directive table: every directive of nginx-rtmp-module 1.2.2 (except the block openers
//! `rtmp`, `server`, `application` and `recorder`, which the glue owns) plus the directives of
//! the nginx-http-flv-module and sergey-dryabzhinsky forks that appear in real configurations.
//! Contexts and argument counts follow the C command tables.

use super::ArgCount::{AtLeast, Between, Exactly, Flag};
use super::Context::{self, Application, Http, Main, Recorder, Rtmp, Server};
use super::Support::{Implemented, Planned, Unneeded};
use super::{ArgCount, Directive, Support};

const R_S: &[Context] = &[Rtmp, Server];
const R_S_A: &[Context] = &[Rtmp, Server, Application];
const R_S_A_REC: &[Context] = &[Rtmp, Server, Application, Recorder];
const RTMP: &[Context] = &[Rtmp];
const SRV: &[Context] = &[Server];
const APP: &[Context] = &[Application];
const MAIN: &[Context] = &[Main];
const HTTP: &[Context] = &[Http];

const AUTO_PUSH: &str = "streams are shared between workers without relays";

const fn one(
    name: &'static str,
    contexts: &'static [Context],
    args: ArgCount,
    support: Support,
) -> Directive {
    Directive {
        name,
        contexts,
        args,
        support,
        multiple: false,
    }
}

const fn many(
    name: &'static str,
    contexts: &'static [Context],
    args: ArgCount,
    support: Support,
) -> Directive {
    Directive {
        name,
        contexts,
        args,
        support,
        multiple: true,
    }
}

/// Every directive this module accepts.
pub static DIRECTIVES: &[Directive] = &[
    // Core (ngx_rtmp_core_module.c). `listen` takes more options than the C module's two
    // arguments (nginx's own `listen` syntax).
    many("listen", SRV, AtLeast(1), Implemented),
    one(
        "so_keepalive",
        R_S,
        Flag,
        Unneeded(
            "it is deprecated and has no effect in nginx-rtmp-module either; \
             use the \"so_keepalive=\" parameter of \"listen\"",
        ),
    ),
    one("timeout", R_S, Exactly(1), Implemented),
    one("ping", R_S, Exactly(1), Implemented),
    one("ping_timeout", R_S, Exactly(1), Implemented),
    one("max_streams", R_S, Exactly(1), Implemented),
    one("ack_window", R_S, Exactly(1), Implemented),
    one("chunk_size", R_S, Exactly(1), Implemented),
    one("max_message", R_S, Exactly(1), Implemented),
    one("out_queue", R_S, Exactly(1), Implemented),
    one("out_cork", R_S, Exactly(1), Planned),
    one("busy", R_S, Flag, Planned),
    one("play_time_fix", R_S_A, Flag, Planned),
    one("publish_time_fix", R_S_A, Flag, Planned),
    one("buflen", R_S, Exactly(1), Implemented),
    // Access and limits.
    many("allow", R_S_A, Between(1, 2), Implemented),
    many("deny", R_S_A, Between(1, 2), Implemented),
    one("max_connections", R_S_A, Exactly(1), Implemented),
    // TLS of `listen ... ssl` (RTMPS): ours, named as in nginx's stream module.
    many("ssl_certificate", R_S, Exactly(1), Implemented),
    many("ssl_certificate_key", R_S, Exactly(1), Implemented),
    one("ssl_protocols", R_S, AtLeast(1), Implemented),
    one("ssl_ciphers", R_S, Exactly(1), Implemented),
    one("ssl_prefer_server_ciphers", R_S, Flag, Implemented),
    one("ssl_session_cache", R_S, Between(1, 2), Implemented),
    one("ssl_session_timeout", R_S, Exactly(1), Implemented),
    one("ssl_handshake_timeout", R_S, Exactly(1), Implemented),
    one("ssl_session_tickets", R_S, Flag, Implemented),
    // Live and codec.
    one("live", R_S_A, Flag, Implemented),
    one("meta", R_S_A, Exactly(1), Implemented),
    one("interleave", R_S_A, Flag, Planned),
    one("wait_key", R_S_A, Flag, Implemented),
    one("wait_video", R_S_A, Flag, Implemented),
    one("publish_notify", R_S_A, Flag, Implemented),
    one("drop_idle_publisher", R_S_A, Exactly(1), Implemented),
    one("sync", R_S_A, Exactly(1), Planned),
    one("play_restart", R_S_A, Flag, Implemented),
    one("idle_streams", R_S_A, Flag, Implemented),
    one("buffer", R_S_A, Exactly(1), Planned),
    // nginx-rtmp-rs's own: players' writes gathered over a short interval.
    one("play_flush_interval", R_S_A, Exactly(1), Implemented),
    one(
        "stream_buckets",
        R_S_A,
        Exactly(1),
        Unneeded("the stream registry sizes itself"),
    ),
    // Record.
    many("record", R_S_A_REC, AtLeast(1), Implemented),
    one("record_path", R_S_A_REC, Exactly(1), Implemented),
    one("record_suffix", R_S_A_REC, Exactly(1), Implemented),
    one("record_unique", R_S_A_REC, Flag, Implemented),
    one("record_append", R_S_A_REC, Flag, Implemented),
    one("record_lock", R_S_A_REC, Flag, Implemented),
    one("record_max_size", R_S_A_REC, Exactly(1), Implemented),
    one("record_max_frames", R_S_A_REC, Exactly(1), Implemented),
    one("record_interval", R_S_A_REC, Exactly(1), Implemented),
    one("record_notify", R_S_A_REC, Flag, Implemented),
    // nginx-rtmp-rs's own: MP4 recordings with a replay playlist.
    one("record_format", R_S_A_REC, Exactly(1), Implemented),
    // VOD.
    many("play", R_S_A, AtLeast(1), Implemented),
    one("play_temp_path", R_S_A, Exactly(1), Implemented),
    one("play_local_path", R_S_A, Exactly(1), Implemented),
    // Relay.
    many("push", APP, AtLeast(1), Implemented),
    many("pull", APP, AtLeast(1), Implemented),
    one("push_reconnect", R_S_A, Exactly(1), Implemented),
    one("pull_reconnect", R_S_A, Exactly(1), Implemented),
    one("session_relay", R_S_A, Flag, Implemented),
    one("relay_buffer", R_S, Exactly(1), Implemented),
    // Notify and netcall.
    one("on_connect", R_S, Exactly(1), Implemented),
    one("on_disconnect", R_S, Exactly(1), Implemented),
    one("on_publish", R_S_A, Exactly(1), Implemented),
    one("on_play", R_S_A, Exactly(1), Implemented),
    one("on_publish_done", R_S_A, Exactly(1), Implemented),
    one("on_play_done", R_S_A, Exactly(1), Implemented),
    one("on_done", R_S_A, Exactly(1), Implemented),
    one("on_record_done", R_S_A_REC, Exactly(1), Implemented),
    one("on_update", R_S_A, Exactly(1), Implemented),
    one("notify_method", R_S_A, Exactly(1), Implemented),
    one("notify_update_timeout", R_S_A, Exactly(1), Implemented),
    one("notify_update_strict", R_S_A, Flag, Implemented),
    one("notify_relay_redirect", R_S_A, Flag, Implemented),
    one("netcall_timeout", R_S, Exactly(1), Implemented),
    one("netcall_buffer", R_S, Exactly(1), Implemented),
    // nginx-rtmp-rs's own: https callbacks.
    one("notify_ssl_verify", RTMP, Flag, Implemented),
    one(
        "notify_ssl_trusted_certificate",
        RTMP,
        Exactly(1),
        Implemented,
    ),
    // nginx-rtmp-rs's own: rtmps:// relays.
    one("relay_ssl_verify", RTMP, Flag, Implemented),
    one(
        "relay_ssl_trusted_certificate",
        RTMP,
        Exactly(1),
        Implemented,
    ),
    // Exec.
    many("exec", R_S_A, AtLeast(1), Implemented),
    many("exec_push", R_S_A, AtLeast(1), Implemented),
    many("exec_pull", R_S_A, AtLeast(1), Implemented),
    many("exec_publish", R_S_A, AtLeast(1), Implemented),
    many("exec_publish_done", R_S_A, AtLeast(1), Implemented),
    many("exec_play", R_S_A, AtLeast(1), Implemented),
    many("exec_play_done", R_S_A, AtLeast(1), Implemented),
    many("exec_record_done", R_S_A_REC, AtLeast(1), Implemented),
    many("exec_static", R_S_A, AtLeast(1), Implemented),
    one("respawn", R_S_A, Flag, Implemented),
    one("respawn_timeout", R_S_A, Exactly(1), Implemented),
    one("exec_kill_signal", R_S_A, Exactly(1), Implemented),
    one("exec_options", R_S_A, Flag, Implemented),
    // HLS.
    one("hls", R_S_A, Flag, Implemented),
    one("hls_path", R_S_A, Exactly(1), Implemented),
    one("hls_fragment", R_S_A, Exactly(1), Implemented),
    one("hls_max_fragment", R_S_A, Exactly(1), Implemented),
    one("hls_playlist_length", R_S_A, Exactly(1), Implemented),
    one("hls_sync", R_S_A, Exactly(1), Implemented),
    one("hls_continuous", R_S_A, Flag, Implemented),
    one("hls_nested", R_S_A, Flag, Implemented),
    one("hls_base_url", R_S_A, Exactly(1), Implemented),
    one("hls_cleanup", R_S_A, Flag, Implemented),
    one("hls_fragment_naming", R_S_A, Exactly(1), Implemented),
    one(
        "hls_fragment_naming_granularity",
        R_S_A,
        Exactly(1),
        Implemented,
    ),
    one("hls_fragment_slicing", R_S_A, Exactly(1), Implemented),
    one("hls_type", R_S_A, Exactly(1), Implemented),
    one("hls_container", R_S_A, Exactly(1), Implemented),
    one("hls_low_latency", R_S_A, Flag, Implemented),
    one("hls_part_duration", R_S_A, Exactly(1), Implemented),
    one("hls_muxdelay", R_S_A, Exactly(1), Implemented),
    one("hls_max_audio_delay", R_S_A, Exactly(1), Implemented),
    one("hls_audio_buffer_size", R_S_A, Exactly(1), Implemented),
    many("hls_variant", R_S_A, AtLeast(1), Implemented),
    one("hls_keys", R_S_A, Flag, Implemented),
    one("hls_key_path", R_S_A, Exactly(1), Implemented),
    one("hls_key_url", R_S_A, Exactly(1), Implemented),
    one("hls_fragments_per_key", R_S_A, Exactly(1), Implemented),
    // DASH.
    one("dash", R_S_A, Flag, Implemented),
    one("dash_path", R_S_A, Exactly(1), Implemented),
    one("dash_fragment", R_S_A, Exactly(1), Implemented),
    one("dash_playlist_length", R_S_A, Exactly(1), Implemented),
    one("dash_nested", R_S_A, Flag, Implemented),
    one("dash_cleanup", R_S_A, Flag, Implemented),
    one("dash_low_latency", R_S_A, Flag, Implemented),
    one("dash_chunk_duration", R_S_A, Exactly(1), Implemented),
    // Access log.
    many("access_log", R_S_A, Between(1, 2), Implemented),
    many("log_format", R_S_A, AtLeast(2), Implemented),
    // Multi-worker relays of the C module (main context, outside rtmp{}).
    one("rtmp_auto_push", MAIN, Flag, Unneeded(AUTO_PUSH)),
    one(
        "rtmp_auto_push_reconnect",
        MAIN,
        Exactly(1),
        Unneeded(AUTO_PUSH),
    ),
    one("rtmp_socket_dir", MAIN, Exactly(1), Unneeded(AUTO_PUSH)),
    // HTTP handlers.
    many("rtmp_stat", HTTP, AtLeast(1), Implemented),
    one("rtmp_stat_stylesheet", HTTP, Exactly(1), Implemented),
    many("rtmp_control", HTTP, AtLeast(1), Implemented),
    // LL-HLS blocking playlist reload and preload hints (this module's own).
    one("rtmp_low_latency", HTTP, Flag, Implemented),
    // nginx-http-flv-module.
    one("flv_live", HTTP, Flag, Implemented),
    one("rtmp_stat_format", HTTP, Exactly(1), Implemented),
    one("gop_cache", APP, Flag, Implemented),
    one("gop_max_frame_count", APP, Exactly(1), Implemented),
    one("gop_max_audio_count", APP, Exactly(1), Implemented),
    one("gop_max_video_count", APP, Exactly(1), Implemented),
    many("server_name", SRV, AtLeast(1), Planned),
    one("hls_dir_access", R_S_A, Exactly(1), Planned),
    one("hls_nested_index_filename", R_S_A, Exactly(1), Implemented),
    one("log_interval", R_S_A, Exactly(1), Planned),
    one("log_size", R_S_A, Exactly(1), Planned),
    one("notify_no_resolve", R_S_A, Flag, Implemented),
    one("resolver", R_S_A, AtLeast(1), Implemented),
    one("resolver_timeout", R_S_A, Exactly(1), Implemented),
    one("tcp_nodelay", R_S_A, Flag, Planned),
    one("tcp_nopush", R_S_A, Flag, Planned),
    one("send_timeout", R_S_A, Exactly(1), Planned),
    one("send_lowat", R_S_A, Exactly(1), Planned),
    one("merge_slashes", R_S, Flag, Planned),
    one(
        "connection_pool_size",
        R_S,
        Exactly(1),
        Unneeded("connections do not use nginx memory pools here"),
    ),
    // sergey-dryabzhinsky/nginx-rtmp-module.
    one("hls_datetime", R_S_A, Exactly(1), Implemented),
    one("hls_allow_client_cache", R_S_A, Exactly(1), Planned),
    one("dash_clock_compensation", R_S_A, Exactly(1), Implemented),
    one("dash_clock_helper_uri", R_S_A, Exactly(1), Implemented),
    one("on_playlist", R_S_A, Exactly(1), Planned),
    one("on_record_started", R_S_A_REC, Exactly(1), Planned),
    many("exec_record_started", R_S_A_REC, AtLeast(1), Planned),
    one("notify_send_redirect", R_S_A, Flag, Planned),
    one("record_interval_size", R_S_A_REC, Exactly(1), Planned),
];

/// Looks a directive up by name (exact, case-sensitive, as nginx does).
pub fn find(name: &str) -> Option<&'static Directive> {
    DIRECTIVES.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 113 directives of arut/nginx-rtmp-module v1.2.2's command tables, without the four
    /// block openers (117 with them; `exec_block` is commented out there).
    const C_MODULE: &[&str] = &[
        "listen",
        "so_keepalive",
        "timeout",
        "ping",
        "ping_timeout",
        "max_streams",
        "ack_window",
        "chunk_size",
        "max_message",
        "out_queue",
        "out_cork",
        "busy",
        "play_time_fix",
        "publish_time_fix",
        "buflen",
        "allow",
        "deny",
        "max_connections",
        "live",
        "meta",
        "interleave",
        "wait_key",
        "wait_video",
        "publish_notify",
        "drop_idle_publisher",
        "sync",
        "play_restart",
        "idle_streams",
        "buffer",
        "stream_buckets",
        "record",
        "record_path",
        "record_suffix",
        "record_unique",
        "record_append",
        "record_lock",
        "record_max_size",
        "record_max_frames",
        "record_interval",
        "record_notify",
        "play",
        "play_temp_path",
        "play_local_path",
        "push",
        "pull",
        "push_reconnect",
        "pull_reconnect",
        "session_relay",
        "relay_buffer",
        "on_connect",
        "on_disconnect",
        "on_publish",
        "on_play",
        "on_publish_done",
        "on_play_done",
        "on_done",
        "on_record_done",
        "on_update",
        "notify_method",
        "notify_update_timeout",
        "notify_update_strict",
        "notify_relay_redirect",
        "netcall_timeout",
        "netcall_buffer",
        "exec",
        "exec_push",
        "exec_pull",
        "exec_publish",
        "exec_publish_done",
        "exec_play",
        "exec_play_done",
        "exec_record_done",
        "exec_static",
        "respawn",
        "respawn_timeout",
        "exec_kill_signal",
        "exec_options",
        "hls",
        "hls_path",
        "hls_fragment",
        "hls_max_fragment",
        "hls_playlist_length",
        "hls_sync",
        "hls_continuous",
        "hls_nested",
        "hls_base_url",
        "hls_cleanup",
        "hls_fragment_naming",
        "hls_fragment_naming_granularity",
        "hls_fragment_slicing",
        "hls_type",
        "hls_muxdelay",
        "hls_max_audio_delay",
        "hls_audio_buffer_size",
        "hls_variant",
        "hls_keys",
        "hls_key_path",
        "hls_key_url",
        "hls_fragments_per_key",
        "dash",
        "dash_path",
        "dash_fragment",
        "dash_playlist_length",
        "dash_nested",
        "dash_cleanup",
        "access_log",
        "log_format",
        "rtmp_auto_push",
        "rtmp_auto_push_reconnect",
        "rtmp_socket_dir",
        "rtmp_stat",
        "rtmp_stat_stylesheet",
        "rtmp_control",
    ];

    const BLOCKS: &[&str] = &["rtmp", "server", "application", "recorder"];

    /// Directives of the forks that real configurations use.
    const FORKS: &[&str] = &[
        "flv_live",
        "gop_cache",
        "gop_max_audio_count",
        "gop_max_video_count",
        "gop_max_frame_count",
        "server_name",
        "rtmp_stat_format",
        "hls_dir_access",
        "hls_nested_index_filename",
        "log_interval",
        "log_size",
        "notify_no_resolve",
        "resolver",
        "resolver_timeout",
        "tcp_nodelay",
        "tcp_nopush",
        "send_timeout",
        "send_lowat",
        "merge_slashes",
        "connection_pool_size",
        "hls_datetime",
        "hls_allow_client_cache",
        "dash_clock_compensation",
        "dash_clock_helper_uri",
        "on_playlist",
        "on_record_started",
        "exec_record_started",
        "notify_send_redirect",
        "record_interval_size",
    ];

    /// Directives of our own, for what the C module cannot do (https callbacks, gathered writes,
    /// RTMPS, LL-HLS).
    const OWN: &[&str] = &[
        "record_format",
        "hls_container",
        "hls_low_latency",
        "hls_part_duration",
        "dash_low_latency",
        "dash_chunk_duration",
        "notify_ssl_verify",
        "notify_ssl_trusted_certificate",
        "relay_ssl_verify",
        "relay_ssl_trusted_certificate",
        "play_flush_interval",
        "ssl_certificate",
        "ssl_certificate_key",
        "ssl_protocols",
        "ssl_ciphers",
        "ssl_prefer_server_ciphers",
        "ssl_session_cache",
        "ssl_session_timeout",
        "ssl_handshake_timeout",
        "ssl_session_tickets",
        "rtmp_low_latency",
    ];

    #[test]
    fn table_holds_exactly_the_c_module_and_fork_directives() {
        assert_eq!(C_MODULE.len() + BLOCKS.len(), 117);
        assert_eq!(FORKS.len(), 29);
        let mut expected: Vec<&str> = C_MODULE.iter().chain(FORKS).chain(OWN).copied().collect();
        expected.sort_unstable();
        let mut actual: Vec<&str> = DIRECTIVES.iter().map(|d| d.name).collect();
        actual.sort_unstable();
        assert_eq!(actual, expected);
    }

    #[test]
    fn names_are_unique_and_block_openers_are_absent() {
        let mut names: Vec<&str> = DIRECTIVES.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DIRECTIVES.len());
        for b in BLOCKS {
            assert!(find(b).is_none(), "{b}");
        }
    }

    #[test]
    fn implemented_set_is_core_live_access_hls_dash_notify_and_exec() {
        let mut implemented: Vec<&str> = DIRECTIVES
            .iter()
            .filter(|d| d.support == Implemented)
            .map(|d| d.name)
            .collect();
        implemented.sort_unstable();
        let mut expected = vec![
            "exec_pull",
            "session_relay",
            "relay_buffer",
            "notify_relay_redirect",
            "pull",
            "pull_reconnect",
            "play",
            "play_temp_path",
            "play_local_path",
            "record_format",
            "hls_container",
            "hls_low_latency",
            "hls_part_duration",
            "dash_low_latency",
            "dash_chunk_duration",
            "record",
            "record_path",
            "record_suffix",
            "record_unique",
            "record_append",
            "record_lock",
            "record_max_size",
            "record_max_frames",
            "record_interval",
            "record_notify",
            "on_record_done",
            "exec_record_done",
            "listen",
            "live",
            "chunk_size",
            "timeout",
            "ping",
            "ping_timeout",
            "max_message",
            "ack_window",
            "buflen",
            "allow",
            "deny",
            "max_connections",
            "ssl_certificate",
            "ssl_certificate_key",
            "ssl_protocols",
            "ssl_ciphers",
            "ssl_prefer_server_ciphers",
            "ssl_session_cache",
            "ssl_session_timeout",
            "ssl_handshake_timeout",
            "ssl_session_tickets",
            "wait_key",
            "wait_video",
            "idle_streams",
            "drop_idle_publisher",
            "gop_cache",
            "gop_max_audio_count",
            "gop_max_frame_count",
            "gop_max_video_count",
            "publish_notify",
            "meta",
            "play_restart",
            "play_flush_interval",
            "out_queue",
            "max_streams",
            "hls",
            "hls_path",
            "hls_fragment",
            "hls_max_fragment",
            "hls_playlist_length",
            "hls_sync",
            "hls_continuous",
            "hls_nested",
            "hls_base_url",
            "hls_cleanup",
            "hls_fragment_naming",
            "hls_fragment_naming_granularity",
            "hls_fragment_slicing",
            "hls_type",
            "hls_muxdelay",
            "hls_max_audio_delay",
            "hls_audio_buffer_size",
            "hls_variant",
            "hls_keys",
            "hls_key_path",
            "hls_key_url",
            "hls_fragments_per_key",
            "hls_nested_index_filename",
            "hls_datetime",
            "dash",
            "dash_path",
            "dash_fragment",
            "dash_playlist_length",
            "dash_nested",
            "dash_cleanup",
            "dash_clock_compensation",
            "dash_clock_helper_uri",
            "on_connect",
            "on_disconnect",
            "on_publish",
            "on_play",
            "on_publish_done",
            "on_play_done",
            "on_done",
            "on_update",
            "notify_method",
            "notify_update_timeout",
            "notify_update_strict",
            "netcall_timeout",
            "netcall_buffer",
            "notify_no_resolve",
            "resolver",
            "resolver_timeout",
            "notify_ssl_verify",
            "notify_ssl_trusted_certificate",
            "relay_ssl_verify",
            "relay_ssl_trusted_certificate",
            "exec",
            "exec_push",
            "exec_publish",
            "exec_publish_done",
            "exec_play",
            "exec_play_done",
            "exec_static",
            "respawn",
            "respawn_timeout",
            "exec_kill_signal",
            "exec_options",
            "push",
            "push_reconnect",
            "access_log",
            "log_format",
            "rtmp_stat",
            "rtmp_stat_stylesheet",
            "rtmp_stat_format",
            "rtmp_control",
            "rtmp_low_latency",
            "flv_live",
        ];
        expected.sort_unstable();
        assert_eq!(implemented, expected);
    }

    #[test]
    fn contexts_follow_the_c_tables() {
        let ctx = |n: &str| find(n).unwrap().contexts;
        assert_eq!(ctx("listen"), &[Server]);
        assert_eq!(ctx("chunk_size"), &[Rtmp, Server]);
        assert_eq!(ctx("push"), &[Application]);
        assert_eq!(ctx("on_connect"), &[Rtmp, Server]);
        assert_eq!(ctx("record_path"), &[Rtmp, Server, Application, Recorder]);
        assert_eq!(
            ctx("on_record_done"),
            &[Rtmp, Server, Application, Recorder]
        );
        assert_eq!(ctx("rtmp_auto_push"), &[Main]);
        assert_eq!(ctx("rtmp_stat"), &[Http]);
        assert!(!find("hls").unwrap().allowed_in(Recorder));
    }

    const DOC: &str = include_str!("../../docs/directives.md");

    /// The text of `#### name`'s section in the directive reference (docs/directives.md).
    fn doc_section(name: &str) -> Option<&'static str> {
        let heading = format!("\n#### {name}\n");
        let start = DOC.find(&heading)? + heading.len();
        let rest = &DOC[start..];
        let end = rest.find("\n#").unwrap_or(rest.len());
        Some(&rest[..end])
    }

    fn doc_contexts(section: &str) -> Vec<Context> {
        let line = section
            .lines()
            .find_map(|l| l.strip_prefix("- Context: "))
            .unwrap_or("");
        if line == "http, server, location" {
            return vec![Http];
        }
        line.split(", ")
            .map(|c| match c {
                "main" => Main,
                "rtmp" => Rtmp,
                "server" => Server,
                "application" => Application,
                "recorder" => Recorder,
                other => panic!("unknown context {other:?}"),
            })
            .collect()
    }

    #[test]
    fn docs_describe_every_directive_with_matching_context_and_support() {
        assert_eq!(DOC.matches("\n#### ").count(), DIRECTIVES.len());
        for d in DIRECTIVES {
            let section = doc_section(d.name)
                .unwrap_or_else(|| panic!("docs/directives.md has no \"#### {}\"", d.name));
            assert!(
                section.contains(&format!("- Syntax: `{} ", d.name))
                    || section.contains(&format!("- Syntax: `{};", d.name)),
                "{}: syntax line",
                d.name
            );
            assert!(section.contains("- Default: "), "{}: default line", d.name);
            assert_eq!(doc_contexts(section), d.contexts, "{}: contexts", d.name);
            let planned = section.contains("*Accepted; not implemented yet.*");
            let unneeded = section.contains("*Accepted; not needed:*");
            match d.support {
                Implemented => assert!(!planned && !unneeded, "{}", d.name),
                Planned => assert!(planned && !unneeded, "{}", d.name),
                Unneeded(reason) => {
                    assert!(!planned, "{}", d.name);
                    assert!(
                        section.contains(&format!("*Accepted; not needed:* {reason}.")),
                        "{}: reason",
                        d.name
                    );
                }
            }
        }
    }

    #[test]
    fn argument_counts() {
        let d = |n: &str| find(n).unwrap();
        assert!(d("allow").check_args(1).is_ok());
        assert!(d("allow").check_args(2).is_ok());
        assert_eq!(
            d("allow").check_args(3).unwrap_err().to_string(),
            "invalid number of arguments in \"allow\" directive"
        );
        assert!(d("live").check_args(0).is_err());
        assert!(d("live").check_args(2).is_err());
        assert!(d("log_format").check_args(1).is_err());
        assert!(d("exec").check_args(9).is_ok());
        assert_eq!(
            d("push").check_context(Server).unwrap_err().to_string(),
            "\"push\" directive is not allowed here"
        );
    }
}
