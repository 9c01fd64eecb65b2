package controlapi

import (
	"net/http"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
)

func (s *server) createVM(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.CreateVM
	if err := decode(w, r, &req); err != nil {
		return err
	}
	vm, err := s.vms.Create(r.Context(), tenant, req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, vm)
	return nil
}

func (s *server) listVMs(w http.ResponseWriter, r *http.Request, tenant string) error {
	return okPage(w, r, s.vms.List(r.Context(), tenant), func(vm api.VM) string { return tenantKey(vm.Tenant, vm.Name) })
}

func (s *server) vm(w http.ResponseWriter, r *http.Request, tenant string) error {
	vm, err := s.vms.Get(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, vm)
}

func (s *server) startVM(w http.ResponseWriter, r *http.Request, tenant string) error {
	vm, err := s.vms.SetRunning(r.Context(), tenant, r.PathValue("name"), true)
	if err != nil {
		return err
	}
	return ok(w, vm)
}

func (s *server) stopVM(w http.ResponseWriter, r *http.Request, tenant string) error {
	vm, err := s.vms.SetRunning(r.Context(), tenant, r.PathValue("name"), false)
	if err != nil {
		return err
	}
	return ok(w, vm)
}

func (s *server) deleteVM(w http.ResponseWriter, r *http.Request, tenant string) error {
	if err := s.vms.Delete(r.Context(), tenant, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) execVM(w http.ResponseWriter, r *http.Request, tenant string) error {
	vm, err := s.vms.Get(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	if vm.Instance == "" {
		return api.Errorf(api.CodeConflict, "VM %s is not running", vm.Name)
	}
	return s.execIn(w, r, tenant, vm.Instance)
}

func (s *server) migrateVM(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.MigrateVM
	if err := decode(w, r, &req); err != nil {
		return err
	}
	vm, err := s.vms.Migrate(r.Context(), tenant, r.PathValue("name"), req.To)
	if err != nil {
		return err
	}
	return ok(w, vm)
}

func (s *server) resizeVM(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.ResizeVM
	if err := decode(w, r, &req); err != nil {
		return err
	}
	return okOr(w)(s.vms.Resize(r.Context(), tenant, r.PathValue("name"), req))
}

func (s *server) attachDisk(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.AttachDisk
	if err := decode(w, r, &req); err != nil {
		return err
	}
	return okOr(w)(s.vms.AttachDisk(r.Context(), tenant, r.PathValue("name"), req.Size))
}

func (s *server) detachDisk(w http.ResponseWriter, r *http.Request, tenant string) error {
	return okOr(w)(s.vms.DetachDisk(r.Context(), tenant, r.PathValue("name"), r.PathValue("disk")))
}

// okOr answers with the VM, or returns the error for the router to answer.
func okOr(w http.ResponseWriter) func(api.VM, error) error {
	return func(vm api.VM, err error) error {
		if err != nil {
			return err
		}
		return ok(w, vm)
	}
}

func (s *server) vmExtensions(w http.ResponseWriter, r *http.Request, tenant string) error {
	exts, err := s.vms.Extensions(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, exts)
}

func (s *server) setVMExtension(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.SetVMExtension
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ext, err := s.vms.SetExtension(r.Context(), tenant, r.PathValue("name"), r.PathValue("extension"), req)
	if err != nil {
		return err
	}
	return ok(w, ext)
}

func (s *server) removeVMExtension(w http.ResponseWriter, r *http.Request, tenant string) error {
	if err := s.vms.RemoveExtension(r.Context(), tenant, r.PathValue("name"), r.PathValue("extension")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
