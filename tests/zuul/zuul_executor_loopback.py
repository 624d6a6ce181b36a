"""zuul-executor whose finger log streamer listens on 127.0.0.1 only.

Zuul binds the streamer to '::' in code (no setting); the harness keeps
every server on loopback, so it replaces the host before the executor
starts. Run with the Zuul venv's python, with zuul-executor's arguments.
"""
import sys

import zuul.cmd.executor
import zuul.lib.log_streamer

_original_init = zuul.lib.log_streamer.LogStreamer.__init__


def _loopback_init(self, host, port, jobdir_root):
    _original_init(self, "127.0.0.1", port, jobdir_root)


zuul.lib.log_streamer.LogStreamer.__init__ = _loopback_init

if __name__ == "__main__":
    sys.argv[0] = "zuul-executor"
    zuul.cmd.executor.main()
