// The dispatcher's map: incidents and responders as labelled markers on Leaflet (global L,
// vendored). Works without tiles: markers on a plain background.
//
// Every kind differs in shape as well as colour (a colour-blind dispatcher, a grey screen):
// incident = square with its reference, escalated = red diamond, available responder = green
// circle, offer pending = amber hollow triangle, busy = grey square. Markers are buttons in
// the tab order (Enter or Space selects); the selected incident is ringed.
import { t } from './i18n.js';
import { getConfig } from './api.js';
import { FINAL } from './status.js';
import { LEVELS, SCALE, step, gridOf } from './grid-state.js';

// grid borders (issue 14): thin lines, heavier for the larger units; only the grids are filled (by
// their open incidents, grid-state.js SCALE) and answer the pointer; the larger units are drawn over
// them without catching clicks
const BORDER = {
  district: { weight: 2.5, color: '#263238' },
  street: { weight: 1.6, color: '#37474f', dashArray: '6 4' },
  community: { weight: 1.2, color: '#455a64' },
  grid: { weight: 0.7, color: '#607d8b' },
};
const CHOSEN = { weight: 3.5, color: '#0b57d0', dashArray: null };

const FALLBACK_CENTER = [31.2304, 121.4737];

export class DispatchMap {
  constructor(el, { onSelect }) {
    this.el = el;
    this.onSelect = onSelect;
    this.map = null;
    this.incidents = new Map(); // id -> marker
    this.responders = new Map();
    this.userMoved = false; // once the dispatcher pans or zooms, the map stops framing itself
    this.selectedId = null;
    this.zoom = null;
    this.shown = new Map(); // id -> the incident last drawn, to redraw on selection
    this.grids = new Map(); // code -> {layer, grid}: the grid borders (issue 14)
    this.chosenGrid = null;
  }

  async init() {
    if (this.map || typeof L === 'undefined') return;
    const cfg = await getConfig();
    const c = cfg.city_center || [cfg.city_center_lat, cfg.city_center_lon];
    const center = c && Number.isFinite(Number(c[0])) ? [Number(c[0]), Number(c[1])] : FALLBACK_CENTER;
    this.map = L.map(this.el, { zoomControl: false, attributionControl: true }).setView(center, 12);
    this.translate();
    for (const ev of ['mousedown', 'wheel', 'touchstart', 'keydown']) {
      this.el.addEventListener(ev, () => { this.userMoved = true; }, { passive: true });
    }
    if (cfg.map_tile_url) {
      L.tileLayer(cfg.map_tile_url, {
        maxZoom: 19,
        attribution: cfg.map_attribution || '© OpenStreetMap contributors',
      }).addTo(this.map);
    } else {
      this.el.classList.add('no-tiles');
      document.getElementById('no-tiles').hidden = false;
    }
  }

  /** Call when the container becomes visible or changes size. */
  resize() {
    if (!this.map) return;
    this.map.invalidateSize();
    this._fit();
  }

  /** Leaflet's own controls in the page's language (again after a switch). */
  translate() {
    if (!this.map) return;
    if (this.zoom) this.zoom.remove();
    this.zoom = L.control.zoom({ zoomInTitle: t('dispatch.zoomIn'), zoomOutTitle: t('dispatch.zoomOut') }).addTo(this.map);
    this.map.attributionControl.setPrefix(false);
  }

  setIncident(inc) {
    if (!this.map) return;
    this._drop(this.incidents, inc.id);
    this.shown.delete(inc.id);
    if (inc.lat === null || inc.lat === undefined || FINAL.has(inc.status)) return;
    this.shown.set(inc.id, inc);
    const kind = inc.status === 'escalated' ? 'escalated' : 'incident';
    const selected = inc.id === this.selectedId;
    const name = `${inc.ref_no} · ${t(`status.${inc.status}`)} · ${t(`category.${inc.category}`)}`;
    const m = this._marker([inc.lat, inc.lon], kind, inc.ref_no, name, selected);
    m.on('click', () => this.onSelect(inc.id));
    m.addTo(this.map);
    this._keyboard(m, () => this.onSelect(inc.id));
    this.incidents.set(inc.id, m);
    this._fit();
  }

  /** Ring the selected incident (null: none). */
  select(id) {
    const before = this.selectedId;
    this.selectedId = id;
    for (const x of [before, id]) {
      const inc = x && this.shown.get(x);
      if (inc) this.setIncident(inc);
    }
  }

  /** Pick mode: the next click on the map calls cb({lat, lon}); pickMode(false) ends it. */
  pickMode(on, cb) {
    if (!this.map) return;
    if (this.pickHandler) this.map.off('click', this.pickHandler);
    this.pickHandler = null;
    this.el.classList.toggle('picking', !!on);
    if (!on) return;
    this.pickHandler = (e) => {
      this.pickMode(false);
      cb({ lat: e.latlng.lat, lon: e.latlng.lng });
    };
    this.map.on('click', this.pickHandler);
  }

  /** A dashed marker where the dispatcher is about to put the incident (null: remove it). */
  showPick(pos, label) {
    if (!this.map) return;
    if (this.pickMarker) this.pickMarker.remove();
    this.pickMarker = null;
    if (!pos) return;
    this.pickMarker = L.circleMarker([pos.lat, pos.lon], {
      radius: 12, color: '#0b57d0', weight: 3, dashArray: '4 4', fillColor: '#0b57d0', fillOpacity: 0.15,
    }).bindTooltip(this._label(label)).addTo(this.map);
  }

  removeIncident(id) {
    this._drop(this.incidents, id);
  }

  setResponder(r) {
    if (!this.map) return;
    this._drop(this.responders, r.id);
    if (r.lat === null || r.lat === undefined || r.status === 'off_duty') return;
    const kind = ['available', 'offered'].includes(r.status) ? r.status : 'busy';
    const m = this._marker([r.lat, r.lon], kind, '', `${r.name} · ${t(`rstate.${r.status}`)}`, false);
    m.addTo(this.map);
    this.responders.set(r.id, m);
    this._fit();
  }

  removeResponder(id) {
    this._drop(this.responders, id);
  }

  clear() {
    for (const id of [...this.incidents.keys()]) this._drop(this.incidents, id);
    for (const id of [...this.responders.keys()]) this._drop(this.responders, id);
  }

  /** Re-label markers after a language switch. */
  relabel(incidents, responders) {
    for (const inc of incidents) this.setIncident(inc);
    for (const r of responders) this.setResponder(r);
  }

  focus(inc) {
    if (this.map && inc && inc.lat !== null && inc.lat !== undefined) {
      const at = L.latLng(inc.lat, inc.lon);
      if (!this.map.getBounds().contains(at)) this.map.panTo(at);
    }
  }

  /** Frame every marker again, and keep doing so as they change. */
  showAll() {
    this.userMoved = false;
    this._fit();
  }

  // ---- grids (issue 14) -------------------------------------------------------------------

  /**
   * Draw the grids of a GeoJSON FeatureCollection's features (again: only the colours change when
   * the same grids come back). onPick(code) when a grid is clicked (not while picking a position).
   */
  setGrids(features, onPick) {
    if (!this.map) return;
    const list = (features || []).filter((f) => f && f.geometry && gridOf(f).code);
    const codes = list.map((f) => gridOf(f).code).sort().join(',');
    if (codes === [...this.grids.keys()].sort().join(',')) {
      for (const f of list) this._restyle(gridOf(f));
      return;
    }
    for (const { layer } of this.grids.values()) layer.remove();
    this.grids.clear();
    // the grids first (below), then community, street and district borders over them
    const byDepth = [...list].sort((a, b) => LEVELS.indexOf(gridOf(b).level) - LEVELS.indexOf(gridOf(a).level));
    for (const f of byDepth) {
      const g = gridOf(f);
      const filled = g.level === 'grid';
      const layer = L.geoJSON(f, {
        interactive: filled,
        style: () => this._style(g),
      });
      if (filled) {
        layer.bindTooltip(() => this._label(this._gridText(this.grids.get(g.code).grid)), { sticky: true });
        layer.on('click', () => {
          if (!this.el.classList.contains('picking')) onPick(g.code);
        });
      }
      layer.addTo(this.map);
      this.grids.set(g.code, { layer, grid: g });
      layer.eachLayer((path) => {
        const el = path.getElement && path.getElement();
        if (el) {
          el.dataset.code = g.code;
          el.dataset.level = g.level;
          el.dataset.open = String(g.open);
        }
      });
    }
  }

  /** Outline the chosen area (null: none). */
  chooseGrid(code) {
    const before = this.chosenGrid;
    this.chosenGrid = code;
    for (const c of [before, code]) {
      const x = c && this.grids.get(c);
      if (x) this._restyle(x.grid);
    }
    const x = code && this.grids.get(code);
    if (x && this.map) {
      x.layer.bringToFront();
      this.userMoved = true; // the dispatcher asked for this area: frame it and stay there
      this.map.fitBounds(x.layer.getBounds(), { padding: [20, 20], maxZoom: 16 });
    }
  }

  _gridText(g) {
    return `${g.name} · ${t(`gridlevel.${g.level}`)}${g.level === 'grid' || g.open ? ` · ${t('dispatch.gridOpen', { n: g.open })}` : ''}`;
  }

  _style(g) {
    const chosen = g.code === this.chosenGrid;
    const base = { ...BORDER[g.level], ...(chosen ? CHOSEN : {}), className: `grid-shape grid-${g.level}${chosen ? ' grid-chosen' : ''}` };
    if (g.level !== 'grid') return { ...base, fill: false };
    return { ...base, fill: true, fillColor: SCALE[step(g.open)].colour, fillOpacity: 0.45 };
  }

  _restyle(g) {
    const x = this.grids.get(g.code);
    if (!x) return;
    x.grid = g;
    x.layer.setStyle(this._style(g));
    x.layer.eachLayer((path) => {
      const el = path.getElement && path.getElement();
      if (el) {
        el.classList.toggle('grid-chosen', g.code === this.chosenGrid);
        el.dataset.open = String(g.open);
      }
    });
  }

  _marker(at, kind, label, name, selected) {
    const wrap = document.createElement('span');
    wrap.className = `mk mk-${kind}${selected ? ' mk-selected' : ''}`;
    const shape = document.createElement('span');
    shape.className = 'mk-shape';
    shape.setAttribute('aria-hidden', 'true');
    wrap.append(shape);
    if (label) {
      const text = document.createElement('span');
      text.className = 'mk-label';
      text.textContent = label; // as text: Leaflet takes an element as it is
      wrap.append(text);
    }
    const icon = L.divIcon({ html: wrap, className: 'mk-icon', iconSize: null, iconAnchor: [11, 11] });
    const m = L.marker(at, { icon, keyboard: true, title: name, alt: name, riseOnHover: true,
      zIndexOffset: selected ? 1000 : kind === 'escalated' ? 500 : 0 });
    m.bindTooltip(this._label(name), { offset: [12, 0], direction: 'right' });
    return m;
  }

  _keyboard(m, act) {
    const el = m.getElement();
    if (!el) return;
    el.setAttribute('aria-label', m.options.title);
    el.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        act();
      }
    });
  }

  _label(text) {
    // an element, not a string: Leaflet would treat a string as HTML
    const span = document.createElement('span');
    span.textContent = text;
    return span;
  }

  _drop(markers, id) {
    const m = markers.get(id);
    if (m) {
      m.remove();
      markers.delete(id);
    }
  }

  _fit() {
    // keep every marker in view until the dispatcher takes over the map
    if (this.userMoved) return;
    clearTimeout(this.fitTimer);
    this.fitTimer = setTimeout(() => {
      const all = [...this.incidents.values(), ...this.responders.values()];
      if (!all.length || this.userMoved) return;
      this.map.fitBounds(L.featureGroup(all).getBounds(), { padding: [30, 30], maxZoom: 15 });
    }, 200);
  }
}
