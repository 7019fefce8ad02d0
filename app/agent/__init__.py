"""The coding agent: a plain tool-use loop (:mod:`~app.agent.loop`) over two tools (:mod:`~app.agent.tools`):
Anthropic's text editor confined to the checkout, and a command tool that runs in the task's sandbox."""
