"""``python -m streamkit.host TARGET ...``: one worker process (what the supervisor starts)."""

from streamkit.host.worker import main

main()
