"""Boards: many leaderboards, each with its order, operator and reset schedule."""
