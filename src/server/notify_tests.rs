//! Tests of the worker's callbacks (on_connect, on_publish, on_play, on_update, *_done).
