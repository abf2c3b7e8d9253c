"""Melody composition with small per-style LSTM models: no Telegram in here."""
