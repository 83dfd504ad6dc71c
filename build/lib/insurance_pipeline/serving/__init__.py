"""The model service. Imports neither dagster, tpot, featuretools nor mlflow: it reads one
joblib file of plain scikit-learn/xgboost/lightgbm objects and its JSON manifest."""
