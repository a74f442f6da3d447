"""The in-app inbox: notifications kept for a member or a user, read in the app or streamed live."""
