package scorer

import (
	"bytes"
	"fmt"
)

// isLightGBMText recognises a LightGBM text model (model.txt, as
// save_model writes it): it starts with the line "tree".
func isLightGBMText(b []byte) bool {
	return bytes.HasPrefix(b, []byte("tree\n")) || bytes.HasPrefix(b, []byte("tree\r\n"))
}

// parseLightGBM parses a LightGBM text model. Placeholder: the reader is
// being written (issue 17).
func parseLightGBM(data []byte, o loadOptions) (predictor, ModelInfo, error) {
	return nil, ModelInfo{}, fmt.Errorf("%w: LightGBM text models are not read yet", ErrUnsupportedModel)
}
