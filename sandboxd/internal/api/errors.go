package api

import (
	"errors"
	"fmt"

	"github.com/moltbot/moltbot-secure/services/errs"
)

var errNonPositive = errors.New("out of range")

func errInvalid(field string, err error) error {
	return fmt.Errorf("field %s: %v: %w", field, err, errs.ErrInvalidArgument)
}
