"""The operations dashboard at `/`: server-rendered pages, the live alert board, sign-in."""
