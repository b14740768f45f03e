package scorer

import "fmt"

// decodeXGBoostBinary reads XGBoost's legacy binary model format into doc.
// Placeholder: the reader is being written (issue 17); until then such
// files are refused as before.
func decodeXGBoostBinary(data []byte, doc *xgbDoc) error {
	return fmt.Errorf("%w: legacy XGBoost binary format: load it with xgboost and save_model(\"model.json\") (or .ubj), which every XGBoost since 1.0 can do", ErrUnsupportedModel)
}
