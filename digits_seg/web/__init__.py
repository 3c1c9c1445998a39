"""Flask app factory and blueprints: views validate input and create jobs, nothing heavier."""
