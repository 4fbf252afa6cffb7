"""A fake Slack Web API server that answers like Slack, over real HTTP (tests, benchmarks, demo).

``FakeSlackApi`` is the entry point; the modules below it are named for their roles:
``serving`` (routing and recording), ``methods`` (Web API method handlers), ``workspace``
(the directory and what was posted), ``block_kit`` (Slack's published limits), ``uploads``
(files_upload_v2), ``response_urls``, ``faults`` (scripted failures and rate limits),
``arguments`` (reading form/JSON arguments), ``wire`` (HTTP plumbing), ``records`` (value types).
"""

from fakes.slack.api import RESPONSE_URL_CALL, UPLOAD_CALL, Ephemeral, FakeSlackApi, Message, RecordedCall, Upload

__all__ = ["RESPONSE_URL_CALL", "UPLOAD_CALL", "Ephemeral", "FakeSlackApi", "Message", "RecordedCall", "Upload"]
