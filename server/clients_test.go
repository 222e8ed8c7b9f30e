package server_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/server"
	"golang.org/x/crypto/bcrypt"
)

func TestOrganizations(t *testing.T) {
	e := newEnv(t)
	res := e.call(http.StatusCreated, "POST", "/api/v2/organizations", e.platformToken, map[string]any{"name": "  Acme  "})
	if res["name"] != "Acme" || res["id"] == "" {
		t.Fatalf("created %v, want name Acme and an id", res)
	}
	admin := res["adminClient"].(map[string]any)
	var perms []string
	for _, p := range admin["permissions"].([]any) {
		perms = append(perms, p.(string))
	}
	if !reflect.DeepEqual(perms, apiusage.OrganizationPermissions) {
		t.Fatalf("admin permissions %v, want %v", perms, apiusage.OrganizationPermissions)
	}
	token := e.login(admin["id"].(string), admin["secret"].(string))
	id := res["id"].(string)

	if got := e.call(http.StatusOK, "GET", "/api/v2/organizations/"+id, token, nil); got["name"] != "Acme" {
		t.Fatalf("own organization %v", got)
	}
	if got := e.call(http.StatusOK, "GET", "/api/v2/organizations/"+id, e.platformToken, nil); got["id"] != id {
		t.Fatalf("the platform reads %v", got)
	}
	checkError(t, e.do(request{method: "GET", path: "/api/v2/organizations/" + e.platformOrg, token: token}), 404, apiusage.CodeNotFound)
	checkError(t, e.do(request{method: "GET", path: "/api/v2/organizations/nothing", token: e.platformToken}), 404, apiusage.CodeNotFound)
	checkError(t, e.do(request{method: "POST", path: "/api/v2/organizations", token: token, body: `{"name":"x"}`}), 403, apiusage.CodeMissingPerms)
	checkError(t, e.do(request{method: "POST", path: "/api/v2/organizations", token: e.platformToken, body: `{"name":" "}`}), 400, apiusage.CodeBadRequest)
}

func TestClients(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	view := apiusage.PermClientView

	t.Run("create shows the secret once", func(t *testing.T) {
		body := e.call(http.StatusCreated, "POST", "/api/v2/oauth/clients", a.admin,
			map[string]any{"name": "reporter", "description": "reads usage", "permissions": []string{view, view, apiusage.PermUsageOrganization}})
		want := map[string]any{"name": "reporter", "description": "reads usage", "organizationId": a.id,
			"permissions": []any{view, apiusage.PermUsageOrganization}, "authorizedGrantType": "CLIENT-CREDENTIALS",
			"dateCreated": t0.Format("2006-01-02T15:04:05.000Z")}
		for k, v := range want {
			if !reflect.DeepEqual(body[k], v) {
				t.Fatalf("%s = %v, want %v", k, body[k], v)
			}
		}
		id, secret := body["id"].(string), body["secret"].(string)
		e.login(id, secret)
		got := e.call(http.StatusOK, "GET", "/api/v2/oauth/clients/"+id, a.admin, nil)
		if _, ok := got["secret"]; ok {
			t.Fatalf("GET shows a secret: %v", got)
		}
		delete(body, "secret")
		if !reflect.DeepEqual(got, body) {
			t.Fatalf("GET %v, want %v", got, body)
		}
	})
	t.Run("a caller grants only what it holds", func(t *testing.T) {
		_, _, adder := e.newClient(a, "adder", apiusage.PermClientAdd, view)
		e.call(http.StatusCreated, "POST", "/api/v2/oauth/clients", adder, map[string]any{"name": "ok", "permissions": []string{view}})
		res := e.do(request{method: "POST", path: "/api/v2/oauth/clients", token: adder,
			body: map[string]any{"name": "too much", "permissions": []string{view, apiusage.PermUsageOrganization, apiusage.PermClientDelete}}})
		body := checkError(t, res, 403, apiusage.CodeMissingPerms)
		if p := body["messageParams"].(map[string]any)["permissions"]; p != apiusage.PermUsageOrganization+", "+apiusage.PermClientDelete {
			t.Fatalf("messageParams %v, want the two missing permissions", body["messageParams"])
		}
		res = e.do(request{method: "POST", path: "/api/v2/oauth/clients", token: a.admin,
			body: map[string]any{"name": "platform", "permissions": []string{apiusage.PermEventAddAny}}})
		checkError(t, res, 403, apiusage.CodeMissingPerms)
		res = e.do(request{method: "POST", path: "/api/v2/oauth/clients", token: a.admin,
			body: map[string]any{"name": "x", "permissions": []string{"usage:everything"}}})
		checkError(t, res, 400, apiusage.CodeBadRequest)
		res = e.do(request{method: "POST", path: "/api/v2/oauth/clients", token: a.admin, body: map[string]any{"permissions": []string{}}})
		checkError(t, res, 400, apiusage.CodeBadRequest)
	})
	t.Run("update: rename, and add only held permissions", func(t *testing.T) {
		id, _, _ := e.newClient(a, "before", view)
		_, _, editor := e.newClient(a, "editor", apiusage.PermClientEdit, view)
		got := e.call(http.StatusOK, "PUT", "/api/v2/oauth/clients/"+id, editor, map[string]any{"name": "after", "description": "d"})
		if got["name"] != "after" || got["description"] != "d" || !reflect.DeepEqual(got["permissions"], []any{view}) {
			t.Fatalf("after PUT without permissions: %v, want renamed with permissions kept", got)
		}
		res := e.do(request{method: "PUT", path: "/api/v2/oauth/clients/" + id, token: editor,
			body: map[string]any{"name": "after", "permissions": []string{view, apiusage.PermUsageClient}}})
		checkError(t, res, 403, apiusage.CodeMissingPerms)
		got = e.call(http.StatusOK, "PUT", "/api/v2/oauth/clients/"+id, editor, map[string]any{"name": "after", "permissions": []string{}})
		if !reflect.DeepEqual(got["permissions"], []any{}) {
			t.Fatalf("permissions %v, want none", got["permissions"])
		}
		// An admin may give back what an editor could not.
		e.call(http.StatusOK, "PUT", "/api/v2/oauth/clients/"+id, a.admin, map[string]any{"name": "after", "permissions": []string{apiusage.PermUsageClient}})
	})
	t.Run("delete", func(t *testing.T) {
		id, _, _ := e.newClient(a, "doomed")
		e.call(http.StatusNoContent, "DELETE", "/api/v2/oauth/clients/"+id, a.admin, nil)
		checkError(t, e.do(request{method: "GET", path: "/api/v2/oauth/clients/" + id, token: a.admin}), 404, apiusage.CodeNotFound)
		checkError(t, e.do(request{method: "DELETE", path: "/api/v2/oauth/clients/" + id, token: a.admin}), 404, apiusage.CodeNotFound)
		checkError(t, e.do(request{method: "DELETE", path: "/api/v2/oauth/clients/" + a.adminID, token: a.admin}), 409, apiusage.CodeConflict)
	})
	t.Run("list pages", func(t *testing.T) {
		b := e.newTenant("Bravo")
		var want []string
		for i := range 4 {
			id, _, _ := e.newClient(b, fmt.Sprintf("client %d", i))
			want = append(want, id)
		}
		var got []string
		for page := 1; page <= 3; page++ {
			body := e.call(http.StatusOK, "GET", fmt.Sprintf("/api/v2/oauth/clients?pageSize=2&pageNumber=%d", page), b.admin, nil)
			if body["total"] != float64(5) || body["pageCount"] != float64(3) || body["pageSize"] != float64(2) || body["pageNumber"] != float64(page) {
				t.Fatalf("page %d: %v, want total 5, pageCount 3", page, body)
			}
			for _, c := range body["entities"].([]any) {
				got = append(got, c.(map[string]any)["id"].(string))
			}
		}
		// Ordered by name: "Bravo admin" first, then the four.
		if want := append([]string{b.adminID}, want...); !reflect.DeepEqual(got, want) {
			t.Fatalf("ids %v, want %v", got, want)
		}
		beyond := e.call(http.StatusOK, "GET", "/api/v2/oauth/clients?pageSize=2&pageNumber=9", b.admin, nil)
		if n := len(beyond["entities"].([]any)); n != 0 {
			t.Fatalf("page 9 has %d entities, want 0", n)
		}
		for _, q := range []string{"pageSize=0", "pageSize=501", "pageNumber=0", "pageSize=x"} {
			checkError(t, e.do(request{method: "GET", path: "/api/v2/oauth/clients?" + q, token: b.admin}), 400, apiusage.CodeBadRequest)
		}
	})
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	now := t0
	t.Run("with an id and secret: idempotent, rehashes a changed secret", func(t *testing.T) {
		dir := openDirectory(t)
		c, secret, err := server.Bootstrap(ctx, dir, "ops", "first-secret", bcrypt.MinCost, now)
		if err != nil || c == nil || secret != "" {
			t.Fatalf("Bootstrap: %v %q %v, want the client and no secret", c, secret, err)
		}
		org, err := dir.PlatformOrganization(ctx)
		if err != nil || !org.Platform || c.OrganizationID != org.ID {
			t.Fatalf("platform organization %+v (%v), want the client's", org, err)
		}
		if !slices.Equal(c.Permissions, apiusage.PlatformPermissions) {
			t.Fatalf("permissions %v, want %v", c.Permissions, apiusage.PlatformPermissions)
		}
		again, _, err := server.Bootstrap(ctx, dir, "ops", "first-secret", bcrypt.MinCost, now.Add(time.Hour))
		if err != nil || again.Generation != 0 || !slices.Equal(again.SecretHash, c.SecretHash) {
			t.Fatalf("a second run changed the client: %+v (%v)", again, err)
		}
		if org2, _ := dir.PlatformOrganization(ctx); org2.ID != org.ID {
			t.Fatalf("a second run made another platform organization %s", org2.ID)
		}
		if _, _, err := server.Bootstrap(ctx, dir, "ops", "second-secret", bcrypt.MinCost, now); err != nil {
			t.Fatal(err)
		}
		stored, err := dir.Client(ctx, "ops")
		if err != nil {
			t.Fatal(err)
		}
		if stored.Generation != 1 || bcrypt.CompareHashAndPassword(stored.SecretHash, []byte("second-secret")) != nil {
			t.Fatalf("after a new secret: generation %d, want 1 and the new secret's hash", stored.Generation)
		}
	})
	t.Run("without: a generated client, once", func(t *testing.T) {
		dir := openDirectory(t)
		c, secret, err := server.Bootstrap(ctx, dir, "", "", bcrypt.MinCost, now)
		if err != nil || c == nil || secret == "" {
			t.Fatalf("Bootstrap: %v %q %v, want a client and its secret", c, secret, err)
		}
		if bcrypt.CompareHashAndPassword(c.SecretHash, []byte(secret)) != nil {
			t.Fatal("the returned secret does not match the stored hash")
		}
		c2, secret2, err := server.Bootstrap(ctx, dir, "", "", bcrypt.MinCost, now)
		if err != nil || c2 != nil || secret2 != "" {
			t.Fatalf("second Bootstrap: %v %q %v, want nothing", c2, secret2, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		dir := openDirectory(t)
		if _, _, err := server.Bootstrap(ctx, dir, "ops", "", bcrypt.MinCost, now); err == nil {
			t.Fatal("an id without a secret was accepted")
		}
		if _, _, err := server.Bootstrap(ctx, dir, "ops", "s", bcrypt.MinCost, now); err != nil {
			t.Fatal(err)
		}
		other := apiusage.Client{ID: "theirs", OrganizationID: "o2", Created: now}
		if err := dir.CreateOrganization(ctx, apiusage.Organization{ID: "o2", Name: "O2", Created: now}, other); err != nil {
			t.Fatal(err)
		}
		if _, _, err := server.Bootstrap(ctx, dir, "theirs", "s", bcrypt.MinCost, now); err == nil {
			t.Fatal("a client of another organization was taken over")
		}
	})
}
