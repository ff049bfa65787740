"""People: admins, approvers and viewers, their passwords and personal API tokens."""
