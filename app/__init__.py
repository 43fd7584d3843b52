"""The Streamlit notebook app: display and input only (never torch, never SQL)."""
