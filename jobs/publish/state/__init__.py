"""The state half of `rebuilder publish`: deciding what the store says is true.

Verify new results, compact them into the history, apply retries and admin requests to the
queue, accept worker enrolments (`update.publish_state`). It never imports the site half.
"""
