"""What the demo (``python firecrest_demo.py``) and the end-to-end tests run through the AiiDA engine."""
